package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
	echomiddleware "github.com/oapi-codegen/echo-middleware"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server/core"
)

// AdminAuthenticator decides whether a request may use the admin routes
// (plugin registration, auth codes, introspection, backup). It gets the
// request, so that a gateway can check its own session (a cookie, say), and
// the bearer token of its Authorization header ("" when there is none). It
// returns a subject naming the caller, for the audit log, or an error: a
// *core.Error with code core.CodeUnauthorized (or CodeRestricted) refuses the request
// with that status, an *echo.HTTPError with its own status; any other error
// is an internal failure and answers 500.
//
// The binary uses StaticTokens.
type AdminAuthenticator func(r *http.Request, bearer string) (subject string, err error)

// MinAdminTokenLength is the shortest admin token StaticTokens accepts: a
// bearer credential that is not guessed online needs its length (the
// binary generates 43 characters, 256 bits).
const MinAdminTokenLength = 32

// MinAdminTokenBits is the least entropy StaticTokens accepts in an admin
// token, estimated from the frequencies of its characters (length times
// Shannon entropy per character): it refuses repeated or low-variety
// tokens ("aaaa…", "abcdabcd…") that are long enough but guessable. A
// random token of 32 hex characters or more (`openssl rand -hex 16`)
// passes, and so does the binary's own.
const MinAdminTokenBits = 96

// ErrWeakAdminToken is StaticTokens' refusal of a token too short, or of
// too little entropy.
var ErrWeakAdminToken = errors.New("admin token is too weak for a bearer credential")

// CheckAdminToken returns an error wrapping ErrWeakAdminToken that says
// what is wrong with a token StaticTokens would refuse.
func CheckAdminToken(t string) error {
	if len(t) < MinAdminTokenLength {
		return fmt.Errorf("%w: %d characters is too short (at least %d; generate one with `openssl rand -base64 32`)", ErrWeakAdminToken, len(t), MinAdminTokenLength)
	}
	if bits := estimatedBits(t); bits < MinAdminTokenBits {
		return fmt.Errorf("%w: about %.0f bits of entropy in its characters, at least %d are needed (it repeats or uses few distinct characters; generate one with `openssl rand -base64 32`)",
			ErrWeakAdminToken, bits, MinAdminTokenBits)
	}
	return nil
}

// estimatedBits is len(t) times the Shannon entropy of t's characters,
// counted over its shortest repeating unit ("0123456789" four times is
// worth one "0123456789"), and nothing for a run of constant steps
// ("abcdefgh...").
func estimatedBits(t string) float64 {
	rs := []rune(t)
	steps := 0
	for i := 2; i < len(rs); i++ {
		if rs[i]-rs[i-1] == rs[i-1]-rs[i-2] {
			steps++
		}
	}
	if len(rs) > 2 && steps*2 > len(rs)-2 {
		return 0
	}
	for p := 1; p < len(rs); p++ {
		periodic := true
		for i := p; i < len(rs) && periodic; i++ {
			periodic = rs[i] == rs[i-p]
		}
		if periodic {
			rs = rs[:p]
			break
		}
	}
	counts := map[rune]int{}
	n := 0
	for _, r := range rs {
		counts[r]++
		n++
	}
	var perChar float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		perChar -= p * math.Log2(p)
	}
	return perChar * float64(n)
}

// StaticTokens returns an AdminAuthenticator that accepts exactly the given
// tokens. It keeps only their SHA-256 hashes and compares a presented token's
// hash with every one of them in constant time. The subject is "admin:" and
// the first 8 hex digits of the token's hash, which tells operators which
// token was used without revealing it.
func StaticTokens(tokens ...string) (AdminAuthenticator, error) {
	var (
		hashes   [][sha256.Size]byte
		subjects []string
	)
	for _, t := range tokens {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if err := CheckAdminToken(t); err != nil {
			return nil, err
		}
		h := sha256.Sum256([]byte(t))
		hashes = append(hashes, h)
		subjects = append(subjects, fmt.Sprintf("admin:%x", h[:4]))
	}
	if len(hashes) == 0 {
		return nil, errors.New("no admin token given")
	}
	return func(_ *http.Request, bearer string) (string, error) {
		if bearer == "" {
			return "", ErrUnauthorized
		}
		h := sha256.Sum256([]byte(bearer))
		match := -1
		for i, want := range hashes {
			// No early exit: every configured token is compared.
			if subtle.ConstantTimeCompare(h[:], want[:]) == 1 {
				match = i
			}
		}
		if match < 0 {
			return "", ErrUnauthorized
		}
		return subjects[match], nil
	}, nil
}

// Where authenticate leaves its verdict on the echo context.
const (
	contextKeySubject        = "plugintoken.subject"
	contextKeyBearerRejected = "plugintoken.bearer-rejected"
)

// bearerRejectedKey marks, on a request's context, that a bearer was
// presented and refused (the revocation route, where it is optional, must
// then not fall back to the plugin's own credentials).
type bearerRejectedKey struct{}

// bearerRejected reports whether withCaller marked ctx so.
func bearerRejected(ctx context.Context) bool {
	v, _ := ctx.Value(bearerRejectedKey{}).(bool)
	return v
}

// withCaller is a strict middleware that hands the caller (core.Caller) to
// the handlers and the service through the request context. The generated code wraps on every request,
// so other operations get the handler back unwrapped.
func (s *Server) withCaller(f gen.StrictHandlerFunc, operationID string) gen.StrictHandlerFunc {
	if !s.callerOps[operationID] {
		return f // an admin's read (x-plugintoken-role: admin-read)
	}
	return func(c echo.Context, request any) (any, error) {
		r := c.Request()
		who := core.Caller{Address: s.clientAddr(r)}
		who.Subject, _ = c.Get(contextKeySubject).(string)
		ctx := core.WithCaller(r.Context(), who)
		if rejected, _ := c.Get(contextKeyBearerRejected).(bool); rejected {
			ctx = context.WithValue(ctx, bearerRejectedKey{}, true)
		}
		c.SetRequest(r.WithContext(ctx))
		return f(c, request)
	}
}

// bearerToken extracts the token of an `Authorization: Bearer <token>` header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// authenticate is the request validator's AuthenticationFunc: the spec, not
// the handlers, says which routes need the admin bearer.
func (s *Server) authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	return s.authenticateEcho(echomiddleware.GetEchoContext(ctx), in.SecuritySchemeName, in.SecurityScheme, in.Scopes)
}

// authenticateEcho checks the request of c against the security scheme
// named name (the fast path calls it directly; echo-middleware validates the
// same request, c's).
func (s *Server) authenticateEcho(c echo.Context, name string, _ *openapi3.SecurityScheme, _ []string) error {
	if name != "bearerAuth" {
		return &echo.HTTPError{Code: http.StatusInternalServerError,
			Internal: fmt.Errorf("security scheme %q has no authenticator", name)}
	}
	header := c.Request().Header.Get(echo.HeaderAuthorization)
	token, ok := bearerToken(header)
	if !ok && header != "" {
		c.Set(contextKeyBearerRejected, true) // not a bearer at all
		return &echo.HTTPError{Code: http.StatusUnauthorized, Internal: ErrUnauthorized}
	}
	subject, err := s.admin(c.Request(), token)
	if err != nil {
		if header == "" {
			// No credential was presented (a route where the bearer is
			// optional, or a session the gateway did not find): nothing
			// was refused, nothing is counted.
			var he *echo.HTTPError
			if errors.As(err, &he) {
				return he
			}
			return &echo.HTTPError{Code: http.StatusUnauthorized, Internal: ErrUnauthorized}
		}
		c.Set(contextKeyBearerRejected, true)
		var e *core.Error
		if errors.As(err, &e) {
			// A refused admin bearer spends an attempt of the client
			// address; past the budget it is answered 429. An accepted
			// bearer is never refused for what others sent.
			if e.Code == core.CodeUnauthorized {
				if over := s.CountFailure("admin|" + s.clientAddr(c.Request())); over != nil {
					return &echo.HTTPError{Code: http.StatusTooManyRequests, Internal: over}
				}
			}
			return &echo.HTTPError{Code: e.Status(), Internal: e}
		}
		// A host's own HTTP error (its session expired, say) keeps its
		// status and message.
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return he
		}
		return &echo.HTTPError{Code: http.StatusInternalServerError, Internal: fmt.Errorf("admin authenticator: %w", err)}
	}
	c.Set(contextKeySubject, subject)
	return nil
}
