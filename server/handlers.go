package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/store"
)

// CreatePlugin registers a plugin and returns its plaintext secret, once.
func (s *Server) CreatePlugin(ctx context.Context, req gen.CreatePluginRequestObject) (gen.CreatePluginResponseObject, error) {
	scopes := s.scopes
	if req.Body.Scopes != nil {
		if len(*req.Body.Scopes) == 0 {
			return nil, Errorf(CodeValidation, "scopes must not be empty: omit it to allow every plugin scope")
		}
		if err := s.vocabulary.check(*req.Body.Scopes); err != nil {
			return nil, err
		}
		scopes = dedupe(*req.Body.Scopes)
	}
	now := s.now()
	secret := newSecret()
	p := store.Plugin{
		ID:         newPluginID(),
		Name:       req.Body.Name,
		SecretHash: store.HashOf(secret),
		SecretHint: secretHint(secret),
		Scopes:     scopes,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	if err := s.store.CreatePlugin(ctx, p); err != nil {
		return nil, err
	}
	s.audit(ctx, "plugin created", slog.String("plugin", p.ID), slog.Any("scopes", p.Scopes))
	return gen.CreatePlugin201JSONResponse{ID: p.ID, Name: p.Name, Secret: secret, Scopes: p.Scopes}, nil
}

// GetPlugin returns a plugin with its secret masked.
func (s *Server) GetPlugin(ctx context.Context, req gen.GetPluginRequestObject) (gen.GetPluginResponseObject, error) {
	p, err := s.store.Plugin(ctx, req.PluginID)
	if err != nil {
		return nil, pluginError(err)
	}
	return gen.GetPlugin200JSONResponse{ID: p.ID, Name: p.Name, Secret: maskSecret(p.SecretHint), Scopes: p.Scopes}, nil
}

// DeletePlugin deletes a plugin; its codes and tokens stop working at once.
func (s *Server) DeletePlugin(ctx context.Context, req gen.DeletePluginRequestObject) (gen.DeletePluginResponseObject, error) {
	if err := s.store.DeletePlugin(ctx, req.PluginID); err != nil {
		return nil, pluginError(err)
	}
	s.audit(ctx, "plugin deleted", slog.String("plugin", req.PluginID))
	return gen.DeletePlugin204Response{}, nil
}

// RegeneratePluginSecret replaces a plugin's secret; the old one fails at once.
func (s *Server) RegeneratePluginSecret(ctx context.Context, req gen.RegeneratePluginSecretRequestObject) (gen.RegeneratePluginSecretResponseObject, error) {
	secret := newSecret()
	if err := s.store.SetPluginSecret(ctx, req.PluginID, store.HashOf(secret), secretHint(secret), s.now()); err != nil {
		return nil, pluginError(err)
	}
	s.audit(ctx, "plugin secret regenerated", slog.String("plugin", req.PluginID))
	return gen.RegeneratePluginSecret200JSONResponse{ID: req.PluginID, Secret: secret}, nil
}

// CreateAuthCode issues a single-use code bound to the plugin and the base.
func (s *Server) CreateAuthCode(ctx context.Context, req gen.CreateAuthCodeRequestObject) (gen.CreateAuthCodeResponseObject, error) {
	now := s.now()
	code, ref := newCredential(PrefixAuthCode, now)
	err := s.store.CreateAuthCode(ctx, store.AuthCode{
		Key:       ref.Key,
		Secret:    ref.Secret,
		PluginID:  req.PluginID,
		BaseID:    req.Body.BaseID,
		IssuedAt:  now,
		ExpiresAt: now.Add(s.codeTTL),
	})
	if err != nil {
		return nil, pluginError(err)
	}
	return gen.CreateAuthCode200JSONResponse{Code: code, ExpiresIn: s.codeTTL.Seconds()}, nil
}

// GetPluginToken is Teable's documented GET-with-a-body form of the exchange.
func (s *Server) GetPluginToken(ctx context.Context, req gen.GetPluginTokenRequestObject) (gen.GetPluginTokenResponseObject, error) {
	tok, err := s.exchange(ctx, req.PluginID, req.Body)
	if err != nil {
		return nil, err
	}
	return gen.GetPluginToken200JSONResponse(tok), nil
}

// PostPluginToken is the POST form of the exchange that Teable's clients send.
func (s *Server) PostPluginToken(ctx context.Context, req gen.PostPluginTokenRequestObject) (gen.PostPluginTokenResponseObject, error) {
	tok, err := s.exchange(ctx, req.PluginID, req.Body)
	if err != nil {
		return nil, err
	}
	return gen.PostPluginToken200JSONResponse(tok), nil
}

// exchange trades a plugin secret and an auth code for a token pair. Scopes
// are checked against the vocabulary before the store is touched; the secret,
// the plugin's allowed scopes and the code are checked, and the code
// consumed, in one store transaction. Failed secrets and codes are
// rate-limited per plugin and client address.
func (s *Server) exchange(ctx context.Context, pluginID string, body *gen.PluginTokenRequest) (gen.PluginTokenResponse, error) {
	if err := s.vocabulary.check(body.Scopes); err != nil {
		return gen.PluginTokenResponse{}, err
	}
	now := s.now()
	scopes := dedupe(body.Scopes)
	// A string that is no code of ours still goes through the store, so
	// that the plugin and its secret are checked (and a wrong secret or an
	// unknown plugin reported) whatever the code looks like.
	code, _ := parseCredential(body.AuthCode, PrefixAuthCode)
	access, refresh, grant := newTokenPair(code.Key, now, s.accessTTL, s.refreshTTL)
	grant.PluginID, grant.BaseID, grant.Scopes = pluginID, body.BaseID, scopes

	secretOK := checkSecret(body.Secret)
	err := s.store.RedeemAuthCode(ctx, store.Redemption{
		PluginID: pluginID,
		BaseID:   body.BaseID,
		Code:     code,
		Now:      now,
		Authorize: func(p store.Plugin) error {
			if err := secretOK(p); err != nil {
				return err
			}
			for _, sc := range scopes {
				if !slices.Contains(p.Scopes, sc) {
					return Errorf(CodeValidation, "Scope %q is not allowed for this plugin", sc)
				}
			}
			return nil
		},
		Grant: grant,
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = errPluginNotFound
	case errors.Is(err, store.ErrCodeReplayed):
		s.metrics.detections.WithLabelValues("auth_code_replay").Inc()
		s.alert(ctx, "auth code replay detected: tokens issued from it revoked", slog.String("plugin", pluginID), slog.String("base", body.BaseID))
		err = errAuthCodeReplayed
	case errors.Is(err, store.ErrInvalidCode):
		err = errInvalidAuthCode
	}
	if err != nil {
		return gen.PluginTokenResponse{}, s.failed(ctx, pluginID, now, err)
	}
	s.metrics.tokens.WithLabelValues("issued").Inc()
	s.audit(ctx, "token issued", slog.String("plugin", pluginID), slog.String("base", body.BaseID), slog.Any("scopes", scopes))
	return gen.PluginTokenResponse{
		AccessToken:      access,
		RefreshToken:     refresh,
		Scopes:           scopes,
		ExpiresIn:        s.accessTTL.Seconds(),
		RefreshExpiresIn: s.refreshTTL.Seconds(),
	}, nil
}

// failed returns what to answer for err, a refused credential attempt for a
// plugin: a wrong secret, code or token spends an attempt of the plugin and
// client address, and is answered 429 instead once their budget is spent.
// A correct credential never comes here, so it is never refused for what
// others sent from the same address.
func (s *Server) failed(ctx context.Context, pluginID string, now time.Time, err error) error {
	switch err {
	case errInvalidSecret, errInvalidAuthCode, errAuthCodeReplayed, errInvalidRefreshToken, errRefreshTokenReused:
		if wait, over := s.failures.fail(pluginID+"|"+callerFrom(ctx).ip, now); over {
			s.metrics.rateLimited.Inc()
			return tooManyFailures(wait)
		}
	}
	return err
}

// audit logs an event operators must be able to trace: who (the admin
// subject, or the plugin), which plugin and base. Never a secret, code or
// token.
func (s *Server) audit(ctx context.Context, event string, attrs ...slog.Attr) {
	s.auditAt(ctx, slog.LevelInfo, event, attrs...)
}

// alert is audit for security events (a theft detected): logged at WARN.
func (s *Server) alert(ctx context.Context, event string, attrs ...slog.Attr) {
	s.auditAt(ctx, slog.LevelWarn, event, attrs...)
}

func (s *Server) auditAt(ctx context.Context, level slog.Level, event string, attrs ...slog.Attr) {
	c := callerFrom(ctx)
	attrs = append(attrs, slog.Bool("audit", true))
	if c.subject != "" {
		attrs = append(attrs, slog.String("by", c.subject))
	}
	if c.ip != "" {
		attrs = append(attrs, slog.String("remote", c.ip))
	}
	s.log.LogAttrs(ctx, level, event, attrs...)
}

// pluginError maps the store's not-found to Teable's "Plugin not found".
func pluginError(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errPluginNotFound
	}
	return err
}
