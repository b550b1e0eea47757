package core

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/plugintoken/plugintoken/store"
)

// This file is the service itself: every operation of the HTTP API as a
// plain Go method, with the same validation and the same errors (*Error).
// The HTTP adapter (package server) turns requests into these calls and
// their results into Teable's answers; a gateway calls them in-process
// (issuing codes for its signed-in users, revoking as an admin,
// authenticating tokens on its own routes).
//
// Everything a method returns is the caller's own copy.

// NewPlugin is a registered plugin with its plaintext secret, which is
// returned once, at registration (or regeneration), and never stored.
type NewPlugin struct {
	ID, Name, Secret string
	Scopes           []string
}

// PluginInfo is a registered plugin as it can be read back: the secret
// masked but for its last characters.
type PluginInfo struct {
	ID, Name     string
	MaskedSecret string
	Scopes       []string
}

// AuthCode is an issued single-use auth code.
type AuthCode struct {
	Code      string
	ExpiresIn time.Duration
}

// TokenRequest is a plugin backend's exchange of its secret and an auth
// code for a token pair (Teable's "Get plugin token" body).
type TokenRequest struct {
	BaseID, Secret, AuthCode string
	Scopes                   []string
}

// TokenPair is an issued access token and refresh token.
type TokenPair struct {
	AccessToken, RefreshToken   string
	Scopes                      []string
	ExpiresIn, RefreshExpiresIn time.Duration
}

// Introspection is what a token is (RFC 7662): for anything not live, only
// Active, false.
type Introspection struct {
	Active              bool
	TokenType           string // "access" or "refresh"
	PluginID, BaseID    string
	Subject             string // sub: who the token's code was issued for
	Scopes              []string
	IssuedAt, ExpiresAt time.Time
}

// required refuses the first empty value of named fields (field, value,
// field, value, ...), as the HTTP validator does (minLength 1), with its
// message.
func required(fieldsAndValues ...string) error {
	for i := 0; i+1 < len(fieldsAndValues); i += 2 {
		if fieldsAndValues[i+1] == "" {
			return Errorf(CodeValidation, "%s: must not be empty", fieldsAndValues[i])
		}
	}
	return nil
}

// CreatePlugin registers a plugin allowed the given scopes (every plugin
// scope when scopes is nil) and returns it with its secret.
func (s *Service) CreatePlugin(ctx context.Context, name string, scopes []string) (NewPlugin, error) {
	if err := required("name", name); err != nil {
		return NewPlugin{}, err
	}
	allowed := s.scopes
	if scopes != nil {
		if len(scopes) == 0 {
			return NewPlugin{}, Errorf(CodeValidation, "scopes must not be empty: omit it to allow every plugin scope")
		}
		if err := s.vocabulary.check(scopes); err != nil {
			return NewPlugin{}, err
		}
		allowed = dedupe(scopes)
	}
	now := s.now()
	secret := newSecret()
	p := store.Plugin{
		ID:         newPluginID(),
		Name:       name,
		SecretHash: store.HashOf(secret),
		SecretHint: secretHint(secret),
		Scopes:     slices.Clone(allowed),
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	if err := s.store.CreatePlugin(ctx, p); err != nil {
		return NewPlugin{}, err
	}
	s.audit(ctx, "plugin created", slog.String("plugin", p.ID), slog.Any("scopes", p.Scopes))
	return NewPlugin{ID: p.ID, Name: p.Name, Secret: secret, Scopes: slices.Clone(p.Scopes)}, nil
}

// Plugin returns a plugin, its secret masked.
func (s *Service) Plugin(ctx context.Context, id string) (PluginInfo, error) {
	if err := required("pluginId", id); err != nil {
		return PluginInfo{}, err
	}
	p, err := s.store.Plugin(ctx, id)
	if err != nil {
		return PluginInfo{}, pluginError(err)
	}
	return PluginInfo{ID: p.ID, Name: p.Name, MaskedSecret: maskSecret(p.SecretHint), Scopes: slices.Clone(p.Scopes)}, nil
}

// DeletePlugin deletes a plugin; its codes and tokens stop working at once.
func (s *Service) DeletePlugin(ctx context.Context, id string) error {
	if err := required("pluginId", id); err != nil {
		return err
	}
	if err := s.store.DeletePlugin(ctx, id); err != nil {
		return pluginError(err)
	}
	s.audit(ctx, "plugin deleted", slog.String("plugin", id))
	return nil
}

// RegenerateSecret gives a plugin a new secret and returns it; the old one
// fails at once.
func (s *Service) RegenerateSecret(ctx context.Context, id string) (string, error) {
	if err := required("pluginId", id); err != nil {
		return "", err
	}
	secret := newSecret()
	if err := s.store.SetPluginSecret(ctx, id, store.HashOf(secret), secretHint(secret), s.now()); err != nil {
		return "", pluginError(err)
	}
	s.audit(ctx, "plugin secret regenerated", slog.String("plugin", id))
	return secret, nil
}

// IssueAuthCode issues a single-use code bound to the plugin and the base,
// for subject: the signed-in user the gateway authenticated ("" for none).
// The tokens issued from the code carry the subject: Principal.Subject,
// Introspection.Subject (sub), and the audit lines.
func (s *Service) IssueAuthCode(ctx context.Context, pluginID, baseID, subject string) (AuthCode, error) {
	if err := required("pluginId", pluginID, "baseId", baseID); err != nil {
		return AuthCode{}, err
	}
	now := s.now()
	code, ref := newCredential(PrefixAuthCode, now)
	err := s.store.CreateAuthCode(ctx, store.AuthCode{
		Key:       ref.Key,
		Secret:    ref.Secret,
		PluginID:  pluginID,
		BaseID:    baseID,
		IssuedAt:  now,
		ExpiresAt: now.Add(s.codeTTL),
		Subject:   subject,
	})
	if err != nil {
		return AuthCode{}, pluginError(err)
	}
	s.audit(ctx, "auth code issued", slog.String("plugin", pluginID), slog.String("base", baseID), slog.String("subject", subject))
	return AuthCode{Code: code, ExpiresIn: s.codeTTL}, nil
}

// Exchange trades a plugin secret and an auth code for a token pair.
// Scopes are checked against the vocabulary before the store is touched;
// the secret, the plugin's allowed scopes and the code are checked, and the
// code consumed, in one store transaction. Failed secrets and codes are
// rate-limited per plugin and client address.
func (s *Service) Exchange(ctx context.Context, pluginID string, req TokenRequest) (TokenPair, error) {
	if err := required("pluginId", pluginID, "baseId", req.BaseID, "secret", req.Secret, "authCode", req.AuthCode); err != nil {
		return TokenPair{}, err
	}
	if len(req.Scopes) == 0 {
		return TokenPair{}, Errorf(CodeValidation, "scopes: must have at least 1 item(s)")
	}
	if err := s.vocabulary.check(req.Scopes); err != nil {
		return TokenPair{}, err
	}
	now := s.now()
	scopes := dedupe(req.Scopes)
	// A string that is no code of ours still goes through the store, so
	// that the plugin and its secret are checked (and a wrong secret or an
	// unknown plugin reported) whatever the code looks like.
	code, _ := parseCredential(req.AuthCode, PrefixAuthCode)
	access, refresh, grant := newTokenPair(code.Key, now, s.accessTTL, s.refreshTTL)
	grant.PluginID, grant.BaseID, grant.Scopes = pluginID, req.BaseID, scopes

	secretOK := checkSecret(req.Secret)
	err := s.store.RedeemAuthCode(ctx, store.Redemption{
		PluginID: pluginID,
		BaseID:   req.BaseID,
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
		s.observer.Observe(EventCodeReplay)
		s.alert(ctx, "auth code replay detected: tokens issued from it revoked", slog.String("plugin", pluginID), slog.String("base", req.BaseID))
		err = errAuthCodeReplayed
	case errors.Is(err, store.ErrInvalidCode):
		err = errInvalidAuthCode
	}
	if err != nil {
		return TokenPair{}, s.failed(ctx, pluginID, now, err)
	}
	s.observer.Observe(EventIssued)
	s.audit(ctx, "token issued", slog.String("plugin", pluginID), slog.String("base", req.BaseID), slog.Any("scopes", scopes))
	return TokenPair{AccessToken: access, RefreshToken: refresh, Scopes: scopes, ExpiresIn: s.accessTTL, RefreshExpiresIn: s.refreshTTL}, nil
}

// Refresh rotates a refresh token into a new pair (Teable's
// POST /plugin/{pluginId}/refreshToken): the presented token and its access
// token stop working at once. A refresh token presented again after its
// rotation (outside the reuse grace) revokes its whole family.
func (s *Service) Refresh(ctx context.Context, pluginID, refreshToken, secret string) (TokenPair, error) {
	if err := required("pluginId", pluginID, "refreshToken", refreshToken, "secret", secret); err != nil {
		return TokenPair{}, err
	}
	now := s.now()
	presented, _ := parseCredential(refreshToken, PrefixRefreshToken)
	access, refresh, grant := newTokenPair(presented.Key, now, s.accessTTL, s.refreshTTL)
	fresh, err := s.store.RotateRefreshToken(ctx, store.Rotation{
		PluginID:  pluginID,
		Refresh:   presented,
		Now:       now,
		Grace:     s.reuseGrace,
		Authorize: checkSecret(secret),
		New:       grant,
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = errPluginNotFound
	case errors.Is(err, store.ErrTokenReused):
		s.observer.Observe(EventTokenReuse)
		s.alert(ctx, "refresh token reuse detected: token family revoked", slog.String("plugin", pluginID))
		err = errRefreshTokenReused
	case errors.Is(err, store.ErrInvalidToken):
		err = errInvalidRefreshToken
	}
	if err != nil {
		return TokenPair{}, s.failed(ctx, pluginID, now, err)
	}
	s.observer.Observe(EventRefreshed)
	s.audit(ctx, "token refreshed", slog.String("plugin", fresh.PluginID), slog.String("base", fresh.BaseID))
	return TokenPair{AccessToken: access, RefreshToken: refresh, Scopes: slices.Clone(fresh.Scopes),
		ExpiresIn: s.accessTTL, RefreshExpiresIn: s.refreshTTL}, nil
}

// lookupToken returns the stored token for a presented one when it is
// active at now, and nil for anything else: garbage, unknown, expired,
// rotated, revoked, or a deleted plugin's. The token is shared: read only.
func (s *Service) lookupToken(ctx context.Context, presented string, now time.Time) (*store.Token, error) {
	ref, ok := parseCredential(presented, PrefixAccessToken)
	if !ok {
		if ref, ok = parseCredential(presented, PrefixRefreshToken); !ok {
			return nil, nil
		}
	}
	t, err := s.store.Token(ctx, ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !t.Active(now):
		return nil, nil
	}
	return t, nil
}

// LiveToken is a live access token as a lookup found it, read in place
// (no copy is made until Principal): what the gateway middleware needs to
// admit a request without allocating. The zero LiveToken grants nothing.
type LiveToken struct{ t *store.Token }

// LiveAccessToken returns the live access token a presented string is,
// with ok false for anything else (garbage, unknown, expired, rotated,
// revoked, a refresh token, a deleted plugin's). An error is the store's.
func (s *Service) LiveAccessToken(ctx context.Context, accessToken string) (LiveToken, bool, error) {
	if !strings.HasPrefix(accessToken, PrefixAccessToken) {
		return LiveToken{}, false, nil
	}
	t, err := s.lookupToken(ctx, accessToken, s.now())
	if err != nil || t == nil || t.Kind != store.KindAccess {
		return LiveToken{}, false, err
	}
	return LiveToken{t}, true, nil
}

// HasScopes reports whether the token holds every scope of want.
func (l LiveToken) HasScopes(want []string) bool {
	if l.t == nil {
		return false
	}
	for _, w := range want {
		if !slices.Contains(l.t.Scopes, w) {
			return false
		}
	}
	return true
}

// BaseID is the base the token acts in.
func (l LiveToken) BaseID() string {
	if l.t == nil {
		return ""
	}
	return l.t.BaseID
}

// Principal is what the token grants, as the caller's own copy.
func (l LiveToken) Principal() Principal {
	t := l.t
	if t == nil {
		return Principal{}
	}
	return Principal{PluginID: t.PluginID, BaseID: t.BaseID, Subject: t.Subject, Scopes: slices.Clone(t.Scopes), ExpiresAt: t.ExpiresAt}
}

// Introspect tells what a token is. Anything not active is exactly
// Introspection{Active: false}.
func (s *Service) Introspect(ctx context.Context, token string) (Introspection, error) {
	t, err := s.lookupToken(ctx, token, s.now())
	if err != nil || t == nil {
		return Introspection{}, err
	}
	return Introspection{Active: true, TokenType: string(t.Kind), PluginID: t.PluginID, BaseID: t.BaseID, Subject: t.Subject,
		Scopes: slices.Clone(t.Scopes), IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt}, nil
}

// Authenticate checks an access token, in-process, and returns what it
// grants (a copy). Anything but a live access token is an *Error with code
// CodeUnauthorized (ErrInvalidAccessToken).
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Principal, error) {
	l, ok, err := s.LiveAccessToken(ctx, accessToken)
	switch {
	case err != nil:
		return Principal{}, err
	case !ok:
		return Principal{}, ErrInvalidAccessToken
	}
	return l.Principal(), nil
}

// RevokeToken revokes any token, as an admin (RFC 7009: an unknown token
// is not an error). A refresh token revokes its whole family.
func (s *Service) RevokeToken(ctx context.Context, token string) error {
	return s.revoke(ctx, token, "", "")
}

// RevokeTokenAsPlugin revokes one of the plugin's own tokens, the plugin
// authenticated by its secret; another plugin's token is left alone, and
// that is not an error either.
func (s *Service) RevokeTokenAsPlugin(ctx context.Context, token, pluginID, secret string) error {
	if err := required("pluginId", pluginID, "secret", secret); err != nil {
		return err
	}
	return s.revoke(ctx, token, pluginID, secret)
}

func (s *Service) revoke(ctx context.Context, token, pluginID, secret string) error {
	// A string that is no token of ours revokes nothing, but the caller is
	// still authenticated (RFC 7009 §2.2: 200 for unknown tokens).
	ref, ok := parseCredential(token, PrefixAccessToken)
	if !ok {
		ref, _ = parseCredential(token, PrefixRefreshToken)
	}
	r := store.Revocation{Token: ref, Now: s.now(), PluginID: pluginID}
	if pluginID != "" {
		r.Authorize = checkSecret(secret)
	}
	plugin := pluginID
	if plugin == "" {
		// An admin's revocation names no plugin: the log says whose token
		// it was, when it is one of ours.
		if t, err := s.store.Token(ctx, ref); err == nil {
			plugin = t.PluginID
		}
	}
	if err := s.store.RevokeToken(ctx, r); err != nil {
		return s.failed(ctx, pluginID, r.Now, pluginError(err))
	}
	s.observer.Observe(EventRevoked)
	s.audit(ctx, "token revoke requested", slog.String("plugin", plugin))
	return nil
}

// failed returns what to answer for err, a refused credential attempt for a
// plugin: a wrong secret, code or token spends an attempt of the plugin and
// client address, and is answered 429 instead once their budget is spent.
// A correct credential never comes here, so it is never refused for what
// others sent from the same address.
func (s *Service) failed(ctx context.Context, pluginID string, now time.Time, err error) error {
	switch err {
	case errInvalidSecret, errInvalidAuthCode, errAuthCodeReplayed, errInvalidRefreshToken, errRefreshTokenReused:
		if over := s.countFailure(pluginID+"|"+CallerFrom(ctx).Address, now); over != nil {
			return over
		}
	}
	return err
}

// CountFailure spends a failed attempt of key, for a credential the host
// checked itself (package server counts refused admin bearers under
// "admin|" and the client address). Past the budget it returns the
// refusal to answer instead (CodeTooManyRequests, with RetryAfter); else
// nil. Keys are the service's failure limiter's: the host's must not
// collide with "<plugin id>|<address>".
func (s *Service) CountFailure(key string) *Error {
	return s.countFailure(key, s.now())
}

func (s *Service) countFailure(key string, now time.Time) *Error {
	if wait, over := s.failures.fail(key, now); over {
		s.observer.Observe(EventRateLimited)
		return tooManyFailures(wait)
	}
	return nil
}

// Audit logs an event operators must trace, as the service's own audit
// lines are (with the caller of ctx): a host's action on the service's
// behalf, such as streaming a backup. Never put a secret in attrs.
func (s *Service) Audit(ctx context.Context, event string, attrs ...slog.Attr) {
	s.audit(ctx, event, attrs...)
}

// audit logs an event operators must be able to trace: who (the admin
// subject, or the plugin), which plugin and base. Never a secret, code or
// token.
func (s *Service) audit(ctx context.Context, event string, attrs ...slog.Attr) {
	s.auditAt(ctx, slog.LevelInfo, event, attrs...)
}

// alert is audit for security events (a theft detected): logged at WARN.
func (s *Service) alert(ctx context.Context, event string, attrs ...slog.Attr) {
	s.auditAt(ctx, slog.LevelWarn, event, attrs...)
}

func (s *Service) auditAt(ctx context.Context, level slog.Level, event string, attrs ...slog.Attr) {
	c := CallerFrom(ctx)
	attrs = append(attrs, slog.Bool("audit", true))
	if c.Subject != "" {
		attrs = append(attrs, slog.String("by", c.Subject))
	}
	if c.Address != "" {
		attrs = append(attrs, slog.String("remote", c.Address))
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
