package token

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/scopes"
	"github.com/authplane/authplane/pkg/secrets"
)

// grant is one token request after the checks every grant shares: a known workspace, an authenticated client
// allowed to use the grant.
type grant struct {
	req    *tokenv1.TokenRequest
	ws     *workspaceInfo
	client *authClient
}

// grantHandler issues the tokens of one grant type (one file each: grant_<type>.go).
type grantHandler func(ctx context.Context, g *grant) (*tokenv1.TokenResponse, error)

// Token handles a token request (RFC 6749 section 4): workspace, grant type, client authentication, the
// client's and workspace's grants, then the grant's own rules.
func (s *Service) Token(ctx context.Context, req *tokenv1.TokenRequest) (*tokenv1.TokenResponse, error) {
	// An unknown workspace is a 404 of the endpoint itself, and is not counted: its labels come from the caller.
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	resp, err := s.token(ctx, ws, req)
	if err != nil {
		code := "server_error"
		var e *apierr.Error
		switch {
		case errors.As(err, &e) && e.OAuthCode != "":
			code = e.OAuthCode
		case status.Code(apierr.Classify(err)) == codes.Unavailable: // the database is unreachable
			code = "temporarily_unavailable"
		}
		s.metrics.TokenRefused(ws.tenantID, ws.serverID, code)
		return nil, err
	}
	s.metrics.TokenIssued(ws.tenantID, ws.serverID, req.GrantType)
	return resp, nil
}

func (s *Service) token(ctx context.Context, ws *workspaceInfo, req *tokenv1.TokenRequest) (*tokenv1.TokenResponse, error) {
	if req.GrantType == "" {
		return nil, apierr.OAuth("invalid_request", "grant_type is required")
	}
	handler, ok := s.grantHandlers[req.GrantType]
	if !ok || !platform.IsSupportedGrant(req.GrantType) {
		return nil, apierr.OAuth("unsupported_grant_type", "grant type "+quote(req.GrantType)+" is not supported")
	}
	client, err := s.authenticate(ctx, ws, req.ClientId, req.ClientSecret)
	if err != nil {
		return nil, err
	}
	if !client.allowsGrant(req.GrantType) {
		return nil, apierr.OAuth("unauthorized_client", "the client is not allowed to use grant type "+req.GrantType)
	}
	if !ws.allowsGrant(req.GrantType) {
		return nil, apierr.OAuth("unauthorized_client", "grant type "+req.GrantType+" is not enabled on this authorization server")
	}
	return handler(ctx, &grant{req: req, ws: ws, client: client})
}

// quote shortens and quotes a caller's value for an error description.
func quote(v string) string {
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// authClient is an authenticated client with what the hot path derives from it.
type authClient struct {
	id        string
	public    bool
	grants    []string
	scopes    *scopes.Rule
	defaults  string // the registered scopes, space-separated: granted when a request names none
	audience  []string
	policyTTL time.Duration // the token policy's access token lifetime, 0 when none is set
	// policyRefreshTTL is the token policy's refresh token lifetime, 0 when none is set.
	policyRefreshTTL time.Duration
	// created is when the client was registered (Unix microseconds): a client id registered again after a
	// deletion is another client, which must not use the refresh tokens of the first.
	created int64
}

func (c *authClient) allowsGrant(g string) bool { return slices.Contains(c.grants, g) }

func newAuthClient(ac *clientv1.AuthenticatedClient) *authClient {
	cl := ac.GetClient()
	c := &authClient{
		id:       cl.GetClientId(),
		public:   cl.GetTokenEndpointAuthMethod() == platform.AuthNone,
		grants:   cl.GetGrantTypes(),
		scopes:   scopes.NewRule(cl.GetScopes(), ac.GetTokenPolicy().GetAllowedScopes()),
		audience: cl.GetAudience(),
	}
	for i, sc := range cl.GetScopes() {
		if i > 0 {
			c.defaults += " "
		}
		c.defaults += sc
	}
	if len(c.audience) == 0 {
		c.audience = []string{c.id}
	}
	if ttl := ac.GetTokenPolicy().GetAccessTokenTtl(); ttl != nil && ttl.AsDuration() >= time.Second {
		c.policyTTL = ttl.AsDuration()
	}
	if ttl := ac.GetTokenPolicy().GetRefreshTokenTtl(); ttl != nil && ttl.AsDuration() >= time.Second {
		c.policyRefreshTTL = ttl.AsDuration()
	}
	if cl.GetCreatedAt() != nil {
		c.created = cl.GetCreatedAt().AsTime().UnixMicro()
	}
	return c
}

func errClientAuth() *apierr.Error {
	return apierr.OAuth("invalid_client", "client authentication failed")
}

// authenticate checks the client's credentials, from memory when this client already authenticated with the same
// secret. The cache key ends with a keyed hash of the presented secret (clientKeys), so an entry is found only
// with the secret that created it: a wrong secret misses and goes to the client service, and concurrent misses share a
// load only when they present the same secret. Looking up an HMAC under a key only this server holds leaks
// nothing through timing, so no further comparison is needed. A change of the client (rotation, deletion,
// update) or of its token policy drops its entries through the bus.
func (s *Service) authenticate(ctx context.Context, ws *workspaceInfo, clientID, secret string) (*authClient, error) {
	if !platform.ValidClientID(clientID) {
		return nil, errClientAuth()
	}
	key := s.clientKeys.key(ws.tenantID, clientID, ws.serverID, secret)
	c, err := s.clients.Get(ctx, key, func(ctx context.Context) (*authClient, error) {
		ctx, cancel := detached(ctx)
		defer cancel()
		ac, err := s.clientAPI.AuthenticateClient(s.internal.Outgoing(ctx), &clientv1.AuthenticateClientRequest{
			TenantId: ws.tenantID, ServerId: ws.serverID, ClientId: clientID, ClientSecret: secret,
		})
		if err != nil {
			switch status.Code(err) {
			case codes.Unauthenticated, codes.NotFound, codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition:
				return nil, errClientAuth()
			}
			return nil, remoteFailure(err, "client authentication")
		}
		cl := ac.GetClient()
		if cl.GetClientId() != clientID || (cl.GetAuthorizationServerId() != "" && cl.GetAuthorizationServerId() != ws.serverID) {
			return nil, errClientAuth()
		}
		c := newAuthClient(ac)
		if !c.public && secret == "" {
			return nil, errClientAuth() // a confidential client always presents its secret
		}
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// accessTTL is the client's token policy lifetime, else the workspace's.
func (s *Service) accessTTL(g *grant) time.Duration {
	if g.client.policyTTL > 0 {
		return g.client.policyTTL
	}
	return g.ws.accessTTL
}

// issueAccessToken signs an access token issued at issued and expiring at exp (both from one reading of the clock,
// so exp - iat is the lifetime exactly) with the workspace's cached signer, no I/O once the signer is loaded. c
// carries the subject, scope and user claims; the others are set here.
func (s *Service) issueAccessToken(ctx context.Context, g *grant, c *authz.Claims, issued, exp time.Time) (string, error) {
	keys, err := s.workspaceKeys(ctx, g.ws)
	if err != nil {
		return "", err
	}
	c.Issuer, c.Audience, c.Expiry, c.IssuedAt, c.JTI = g.ws.issuer, g.client.audience, exp.Unix(), issued.Unix(), secrets.Random(16)
	c.ClientID, c.TenantID, c.ServerID, c.ClientIncarnation = g.client.id, g.ws.tenantID, g.ws.serverID, g.client.created
	if err := s.coverExpiry(ctx, g.ws, keys, c.Expiry); err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", apierr.Wrap(err, "encode claims")
	}
	tok, err := keys.signer.sign(payload)
	if err != nil {
		return "", apierr.Wrap(err, "sign access token")
	}
	return tok, nil
}
