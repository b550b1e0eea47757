package store

import "time"

// The stored form of each record is the same in every backend: these
// methods let another backend (etcdstore) store, and read back, exactly
// what the bbolt store does, and ask a stored grant what a lookup sees.

// MarshalBinary encodes the plugin as stored.
func (p *Plugin) MarshalBinary() ([]byte, error) { return p.marshal(), nil }

// UnmarshalBinary decodes a plugin encoded by MarshalBinary.
func (p *Plugin) UnmarshalBinary(b []byte) error { return p.unmarshal(b) }

// MarshalBinary encodes the code as stored (its Key is not part of it).
func (c *AuthCode) MarshalBinary() ([]byte, error) { return c.marshal(), nil }

// UnmarshalBinary decodes a code encoded by MarshalBinary.
func (c *AuthCode) UnmarshalBinary(b []byte) error { return c.unmarshal(b) }

// MarshalBinary encodes the grant as stored (its Key is not part of it).
func (g *Grant) MarshalBinary() ([]byte, error) { return g.marshal(), nil }

// UnmarshalBinary decodes a grant encoded by MarshalBinary.
func (g *Grant) UnmarshalBinary(b []byte) error { return g.unmarshal(b) }

// Presents tells which token of the grant a Ref presents.
func (g *Grant) Presents(ref Ref) (TokenKind, bool) { return g.presents(ref) }

// Token returns the grant's token of the given kind, as lookups see it.
func (g *Grant) Token(kind TokenKind) Token { return g.view(kind) }

// ExpiresAt is when both of the grant's tokens have expired.
func (g *Grant) ExpiresAt() time.Time { return g.expiresAt() }
