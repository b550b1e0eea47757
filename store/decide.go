package store

// The decisions below are the contract of the store's check-and-write
// operations, shared by every backend: a backend reads the records (nil
// when absent), asks the decision, and writes what it says in the same
// atomic step (one bbolt write transaction; one etcd transaction guarded by
// the revisions it read).

// DecideRedemption decides a redemption from the plugin and the code as
// stored (nil when absent). A nil outcome means the code may be redeemed.
// Otherwise the outcome is ErrNotFound (no plugin), Authorize's error,
// ErrInvalidCode, or ErrCodeReplayed (the backend must then revoke the
// code's family).
//
// For an unknown plugin it still runs Authorize on a placeholder, so that
// answering "unknown plugin" costs what answering "wrong secret" does.
func DecideRedemption(r Redemption, p *Plugin, c *AuthCode) error {
	if p == nil {
		_ = r.Authorize(Plugin{})
		return ErrNotFound
	}
	if err := r.Authorize(*p); err != nil {
		return err
	}
	switch {
	case c == nil, !r.Code.matches(c.Secret), c.PluginID != r.PluginID:
		return ErrInvalidCode
	case !c.RedeemedAt.IsZero():
		return ErrCodeReplayed
	case !r.Now.Before(c.ExpiresAt), c.BaseID != r.BaseID:
		return ErrInvalidCode
	}
	return nil
}

// DecideRotation decides a rotation from the plugin and the presented grant
// as stored (nil when absent, or when its plugin is gone). A nil outcome
// means the grant may be rotated (for the first time, or again within the
// grace period). Otherwise the outcome is ErrNotFound (no plugin),
// Authorize's error, ErrInvalidToken, or ErrTokenReused (the backend must
// then revoke the grant's family).
func DecideRotation(r Rotation, p *Plugin, g *Grant) error {
	if p == nil {
		_ = r.Authorize(Plugin{})
		return ErrNotFound
	}
	if err := r.Authorize(*p); err != nil {
		return err
	}
	if g == nil {
		return ErrInvalidToken
	}
	kind, ok := g.presents(r.Refresh)
	switch {
	case !ok, kind != KindRefresh, g.PluginID != r.PluginID, !r.Now.Before(g.RefreshExpiresAt):
		return ErrInvalidToken
	case !g.RotatedAt.IsZero() && r.Now.Sub(g.RotatedAt) >= r.Grace:
		return ErrTokenReused
	}
	return nil
}

// DecideRevocation decides a revocation from the plugin (when r.PluginID is
// set) and the grant as stored (nil when absent). It returns which token of
// the grant to revoke and true, or false when there is nothing to do
// (unknown token, another plugin's, already revoked), or a refusal
// (ErrNotFound for the plugin, Authorize's error).
func DecideRevocation(r Revocation, p *Plugin, g *Grant) (TokenKind, bool, error) {
	if r.PluginID != "" {
		if p == nil {
			return "", false, ErrNotFound
		}
		if r.Authorize != nil {
			if err := r.Authorize(*p); err != nil {
				return "", false, err
			}
		}
	}
	if g == nil {
		return "", false, nil
	}
	kind, ok := g.presents(r.Token)
	switch {
	case !ok:
		return "", false, nil
	case r.PluginID != "" && g.PluginID != r.PluginID:
		return "", false, nil
	case kind == KindAccess && !g.AccessRevokedAt.IsZero():
		return "", false, nil
	}
	return kind, true, nil
}
