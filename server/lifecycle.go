package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/store"
)

var (
	errInvalidRefreshToken = Errorf(CodeValidation, "Invalid refresh token")
	errRevokeNeedsClient   = Errorf(CodeValidation, "pluginId and secret are required without an admin bearer token")
)

// RefreshPluginToken rotates a refresh token into a new pair (Teable's
// POST /plugin/{pluginId}/refreshToken).
func (s *Server) RefreshPluginToken(ctx context.Context, req gen.RefreshPluginTokenRequestObject) (gen.RefreshPluginTokenResponseObject, error) {
	now := s.now()
	presented, _ := parseCredential(req.Body.RefreshToken, PrefixRefreshToken)
	access, refresh, grant := newTokenPair(presented.Key, now, s.accessTTL, s.refreshTTL)
	fresh, err := s.store.RotateRefreshToken(ctx, store.Rotation{
		PluginID:  req.PluginID,
		Refresh:   presented,
		Now:       now,
		Grace:     s.reuseGrace,
		Authorize: checkSecret(req.Body.Secret),
		New:       grant,
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = errPluginNotFound
	case errors.Is(err, store.ErrTokenReused):
		s.metrics.detections.WithLabelValues("refresh_token_reuse").Inc()
		s.alert(ctx, "refresh token reuse detected: token family revoked", slog.String("plugin", req.PluginID))
		err = errRefreshTokenReused
	case errors.Is(err, store.ErrInvalidToken):
		err = errInvalidRefreshToken
	}
	if err != nil {
		return nil, s.failed(ctx, req.PluginID, now, err)
	}
	s.metrics.tokens.WithLabelValues("refreshed").Inc()
	s.audit(ctx, "token refreshed", slog.String("plugin", fresh.PluginID), slog.String("base", fresh.BaseID))
	return gen.RefreshPluginToken200JSONResponse{
		AccessToken:      access,
		RefreshToken:     refresh,
		Scopes:           fresh.Scopes,
		ExpiresIn:        s.accessTTL.Seconds(),
		RefreshExpiresIn: s.refreshTTL.Seconds(),
	}, nil
}

// lookupToken returns the stored token for a presented one when it is
// active at now, and nil for anything else: garbage, unknown, expired,
// rotated, revoked, or a deleted plugin's. The token is shared: read only.
func (s *Server) lookupToken(ctx context.Context, presented string, now time.Time) (*store.Token, error) {
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

// IntrospectToken tells a gateway whether a token is active and what it
// grants. Anything not active is exactly {"active": false}.
func (s *Server) IntrospectToken(ctx context.Context, req gen.IntrospectTokenRequestObject) (gen.IntrospectTokenResponseObject, error) {
	t, err := s.lookupToken(ctx, req.Body.Token, s.now())
	if err != nil {
		return nil, err
	}
	if t == nil {
		return gen.IntrospectToken200JSONResponse{Active: false}, nil
	}
	kind := gen.IntrospectionTokenType(t.Kind)
	exp, iat := t.ExpiresAt.Unix(), t.IssuedAt.Unix()
	return gen.IntrospectToken200JSONResponse{
		Active:    true,
		TokenType: &kind,
		PluginID:  &t.PluginID,
		BaseID:    &t.BaseID,
		Scopes:    &t.Scopes,
		Exp:       &exp,
		Iat:       &iat,
	}, nil
}

// RevokeToken revokes a token for its owning plugin or for an admin, and
// answers 200 whether or not the token existed (RFC 7009 §2.2).
func (s *Server) RevokeToken(ctx context.Context, req gen.RevokeTokenRequestObject) (gen.RevokeTokenResponseObject, error) {
	// A string that is no token of ours revokes nothing, but the caller is
	// still authenticated (RFC 7009 §2.2: 200 for unknown tokens).
	ref, ok := parseCredential(req.Body.Token, PrefixAccessToken)
	if !ok {
		ref, _ = parseCredential(req.Body.Token, PrefixRefreshToken)
	}
	r := store.Revocation{Token: ref, Now: s.now()}
	c := callerFrom(ctx)
	switch {
	case c.subject != "":
		// An admin may revoke any token.
	case c.bearerRejected:
		return nil, errMissingBearer
	case req.Body.PluginID == nil || req.Body.Secret == nil:
		return nil, errRevokeNeedsClient
	default:
		r.PluginID = *req.Body.PluginID
		r.Authorize = checkSecret(*req.Body.Secret)
	}
	plugin := r.PluginID
	if plugin == "" {
		// An admin's revocation names no plugin: the log says whose token
		// it was, when it is one of ours.
		if t, err := s.store.Token(ctx, ref); err == nil {
			plugin = t.PluginID
		}
	}
	if err := s.store.RevokeToken(ctx, r); err != nil {
		return nil, s.failed(ctx, r.PluginID, r.Now, pluginError(err))
	}
	s.metrics.tokens.WithLabelValues("revoked").Inc()
	s.audit(ctx, "token revoke requested", slog.String("plugin", plugin))
	return gen.RevokeToken200JSONResponse{Revoked: true}, nil
}
