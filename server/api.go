package server

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server/core"
)

// api is the HTTP adapter: the generated strict interface, each method
// turning a request into a call of the service (package core) and its result into
// Teable's answer. It is unexported, so that no generated type is part of
// the library's API. An operation of the served document that has no method
// here (after an upstream update, say) answers 501 through
// gen.Unimplemented.
type api struct {
	gen.Unimplemented
	s *Server
}

var _ gen.StrictServerInterface = api{}

func (a api) CreatePlugin(ctx context.Context, req gen.CreatePluginRequestObject) (gen.CreatePluginResponseObject, error) {
	var scopes []string
	if req.Body.Scopes != nil {
		scopes = append([]string{}, *req.Body.Scopes...)
	}
	p, err := a.s.CreatePlugin(ctx, req.Body.Name, scopes)
	if err != nil {
		return nil, err
	}
	return gen.CreatePlugin201JSONResponse{ID: p.ID, Name: p.Name, Secret: p.Secret, Scopes: p.Scopes}, nil
}

func (a api) GetPlugin(ctx context.Context, req gen.GetPluginRequestObject) (gen.GetPluginResponseObject, error) {
	p, err := a.s.Plugin(ctx, req.PluginID)
	if err != nil {
		return nil, err
	}
	return gen.GetPlugin200JSONResponse{ID: p.ID, Name: p.Name, Secret: p.MaskedSecret, Scopes: p.Scopes}, nil
}

func (a api) DeletePlugin(ctx context.Context, req gen.DeletePluginRequestObject) (gen.DeletePluginResponseObject, error) {
	if err := a.s.DeletePlugin(ctx, req.PluginID); err != nil {
		return nil, err
	}
	return gen.DeletePlugin204Response{}, nil
}

func (a api) RegeneratePluginSecret(ctx context.Context, req gen.RegeneratePluginSecretRequestObject) (gen.RegeneratePluginSecretResponseObject, error) {
	secret, err := a.s.RegenerateSecret(ctx, req.PluginID)
	if err != nil {
		return nil, err
	}
	return gen.RegeneratePluginSecret200JSONResponse{ID: req.PluginID, Secret: secret}, nil
}

func (a api) CreateAuthCode(ctx context.Context, req gen.CreateAuthCodeRequestObject) (gen.CreateAuthCodeResponseObject, error) {
	var subject string
	if req.Body.Subject != nil {
		subject = *req.Body.Subject
	}
	code, err := a.s.IssueAuthCode(ctx, req.PluginID, req.Body.BaseID, subject)
	if err != nil {
		return nil, err
	}
	return gen.CreateAuthCode200JSONResponse{Code: code.Code, ExpiresIn: code.ExpiresIn.Seconds()}, nil
}

// GetPluginToken is Teable's documented GET-with-a-body form of the exchange.
func (a api) GetPluginToken(ctx context.Context, req gen.GetPluginTokenRequestObject) (gen.GetPluginTokenResponseObject, error) {
	tok, err := a.exchange(ctx, req.PluginID, req.Body)
	if err != nil {
		return nil, err
	}
	return gen.GetPluginToken200JSONResponse(tok), nil
}

// PostPluginToken is the POST form of the exchange that Teable's clients send.
func (a api) PostPluginToken(ctx context.Context, req gen.PostPluginTokenRequestObject) (gen.PostPluginTokenResponseObject, error) {
	tok, err := a.exchange(ctx, req.PluginID, req.Body)
	if err != nil {
		return nil, err
	}
	return gen.PostPluginToken200JSONResponse(tok), nil
}

func (a api) exchange(ctx context.Context, pluginID string, body *gen.PluginTokenRequest) (gen.PluginTokenResponse, error) {
	pair, err := a.s.Exchange(ctx, pluginID, core.TokenRequest{BaseID: body.BaseID, Secret: body.Secret, AuthCode: body.AuthCode, Scopes: body.Scopes})
	if err != nil {
		return gen.PluginTokenResponse{}, err
	}
	return tokenResponse(pair), nil
}

func tokenResponse(p core.TokenPair) gen.PluginTokenResponse {
	return gen.PluginTokenResponse{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, Scopes: p.Scopes,
		ExpiresIn: p.ExpiresIn.Seconds(), RefreshExpiresIn: p.RefreshExpiresIn.Seconds()}
}

func (a api) RefreshPluginToken(ctx context.Context, req gen.RefreshPluginTokenRequestObject) (gen.RefreshPluginTokenResponseObject, error) {
	pair, err := a.s.Refresh(ctx, req.PluginID, req.Body.RefreshToken, req.Body.Secret)
	if err != nil {
		return nil, err
	}
	// The refresh answer mirrors the token answer: a conversion, so that
	// the compiler says so if the two documents' schemas ever part.
	return gen.RefreshPluginToken200JSONResponse(tokenResponse(pair)), nil
}

// IntrospectToken tells a gateway whether a token is active and what it
// grants. Anything not active is exactly {"active": false}.
func (a api) IntrospectToken(ctx context.Context, req gen.IntrospectTokenRequestObject) (gen.IntrospectTokenResponseObject, error) {
	in, err := a.s.Introspect(ctx, req.Body.Token)
	if err != nil {
		return nil, err
	}
	if !in.Active {
		return gen.IntrospectToken200JSONResponse{Active: false}, nil
	}
	// The answer's fields are pointers (optional in the document): one
	// allocation holds everything they point to.
	v := &introspected{Introspection: in, kind: gen.IntrospectionTokenType(in.TokenType),
		exp: in.ExpiresAt.Unix(), iat: in.IssuedAt.Unix()}
	out := gen.IntrospectToken200JSONResponse{Active: true, TokenType: &v.kind, PluginID: &v.PluginID, BaseID: &v.BaseID,
		Scopes: &v.Scopes, Exp: &v.exp, Iat: &v.iat}
	if in.Subject != "" {
		out.Sub = &v.Subject
	}
	return out, nil
}

// introspected is what an active introspection's answer points to.
type introspected struct {
	core.Introspection
	kind     gen.IntrospectionTokenType
	exp, iat int64
}

var errRevokeNeedsClient = core.Errorf(core.CodeValidation, "pluginId and secret are required without an admin bearer token")

// RevokeToken revokes a token for its owning plugin or for an admin, and
// answers 200 whether or not the token existed (RFC 7009 §2.2).
func (a api) RevokeToken(ctx context.Context, req gen.RevokeTokenRequestObject) (gen.RevokeTokenResponseObject, error) {
	var err error
	switch {
	case core.CallerFrom(ctx).Subject != "":
		err = a.s.RevokeToken(ctx, req.Body.Token) // an admin may revoke any token
	case bearerRejected(ctx):
		return nil, ErrUnauthorized
	case req.Body.PluginID == nil || req.Body.Secret == nil:
		return nil, errRevokeNeedsClient
	default:
		err = a.s.RevokeTokenAsPlugin(ctx, req.Body.Token, *req.Body.PluginID, *req.Body.Secret)
	}
	if err != nil {
		return nil, err
	}
	return gen.RevokeToken200JSONResponse{Revoked: true}, nil
}

// GetBackup streams a hot backup of the store to an admin.
func (a api) GetBackup(ctx context.Context, _ gen.GetBackupRequestObject) (gen.GetBackupResponseObject, error) {
	// The copy is written by the store into a pipe that the response
	// drains; the size comes first, for Content-Length. Closing the pipe's
	// reader (the response does when it is done, or fails) ends the copy.
	pr, pw := io.Pipe()
	size := make(chan int64, 1)
	failed := make(chan error, 1)
	go func() {
		err := a.s.Backup(context.WithoutCancel(ctx), pw, func(n int64) { size <- n })
		_ = pw.CloseWithError(err)
		if err != nil {
			failed <- err
		}
	}()
	select {
	case n := <-size:
		a.s.Audit(ctx, "backup streamed", slog.Int64("bytes", n))
		return gen.GetBackup200ApplicationOctetStreamResponse{Body: pr, ContentLength: n}, nil
	case err := <-failed:
		if errors.Is(err, core.ErrNoBackup) {
			return nil, core.Errorf(core.CodeNotImplemented, "This store cannot stream a backup (on etcd, take one with `etcdctl snapshot save`)")
		}
		return nil, err
	}
}
