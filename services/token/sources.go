package token

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/egress"
	"github.com/authplane/authplane/pkg/secrets"
)

// Identity source methods (workspacev1.IdentitySource.method).
const (
	methodIdentityPool = "identity_pool"
	methodExternal     = "external"
)

// External verifiers (the contract's "External verifier protocol").
const (
	// signatureHeader carries `sha256=<hex HMAC-SHA256 of the body>` under the idp's signing secret.
	signatureHeader = "X-Authplane-Signature"
	// defaultVerifierTimeout applies to a verifier registered without a timeout; maxVerifierTimeout bounds any.
	defaultVerifierTimeout = 2 * time.Second
	maxVerifierTimeout     = 30 * time.Second
	// maxVerifierResponse bounds what is read of an answer: a verifier says yes, a subject and a little more.
	maxVerifierResponse = 64 << 10
	// maxSubjectLength bounds a verifier's sub, which goes into every token of the user.
	maxSubjectLength = 255
)

// newVerifierClient is the HTTP client of external verifiers: no redirects (a verifier answers itself; a 3xx is
// not a yes), bounded dial, handshake and header sizes, and kept-alive connections to the few verifiers there are.
// Each call carries its source's timeout in its context.
//
// Its dialer refuses, through the egress policy's Control hook, every address the policy denies, whatever a
// verifier's name resolved to when it was configured (DNS rebinding, a name pointed at a metadata service since).
// It uses no proxy, not even one from the environment: through a proxy, Control would see the proxy's address,
// never the verifier's, and the proxy would connect to a metadata address on our behalf.
func newVerifierClient(policy *egress.Policy) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Resolver: policy.Resolver(), Control: policy.Control}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			TLSHandshakeTimeout:    5 * time.Second,
			MaxIdleConns:           64,
			MaxIdleConnsPerHost:    8,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: 16 << 10,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       maxVerifierTimeout,
	}
}

// identity is a user a source accepted.
type identity struct {
	subject   string
	claims    map[string]any // profile claims (pool users)
	extraInfo map[string]any // an external verifier's extraInfo
}

// authenticateUser tries the workspace's identity sources in order; the first that accepts the credentials wins.
// It returns the accepting source and the user, or nil when none accepted. When none accepted and a pool
// could not answer (its service unreachable, its hashing pool busy), that failure is returned instead: the
// credentials were not refused, only not checked.
func (s *Service) authenticateUser(ctx context.Context, g *grant, username, password string) (*workspacev1.IdentitySource, *identity, error) {
	var failure error
	for _, src := range g.ws.md.GetIdentitySources() {
		var (
			id  *identity
			err error
		)
		switch src.GetMethod() {
		case methodIdentityPool:
			id, err = s.checkPool(ctx, g, src, username, password)
		case methodExternal:
			id = s.checkExternal(ctx, g, src, username)
		default:
			s.log.WarnContext(ctx, "identity source of an unknown method skipped", "tenant", g.ws.tenantID, "server", g.ws.serverID,
				"idp", src.GetId(), "method", src.GetMethod())
		}
		if err != nil && failure == nil {
			failure = err
		}
		if id != nil {
			return src, id, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, nil, failure
}

// checkPool asks the pool service to check the password, with the lockout that applies on every password path.
// Any answer but password_correct (unknown user, wrong password, locked, inactive) is a refusal.
func (s *Service) checkPool(ctx context.Context, g *grant, src *workspacev1.IdentitySource, username, password string) (*identity, error) {
	req := &poolv1.AuthenticatePasswordRequest{
		TenantId: g.ws.tenantID, PoolId: src.GetIdentityPoolId(), Identifier: username, Password: password,
	}
	resp, err := s.poolAPI.AuthenticatePassword(s.internal.Outgoing(ctx), req)
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
			// The pool is gone, or it refuses this input (an empty identifier): not this source's user.
			s.log.InfoContext(ctx, "identity pool refused the check", "tenant", g.ws.tenantID, "server", g.ws.serverID,
				"idp", src.GetId(), "pool", src.GetIdentityPoolId(), "code", status.Code(err).String())
			return nil, nil
		}
		return nil, remoteFailure(err, "password check")
	}
	if resp.GetResult() != "password_correct" || resp.GetUser().GetId() == "" {
		return nil, nil
	}
	return &identity{subject: resp.GetUser().GetId(), claims: userClaims(resp.GetUser())}, nil
}

// verifierAnswer is what an accepting verifier may say.
type verifierAnswer struct {
	Sub       any `json:"sub"`
	ExtraInfo any `json:"extraInfo"`
}

// checkExternal POSTs the token request to an external verifier, signed with the idp's derived secret. A 2xx
// accepts (with the answer's sub, else the username, as the subject); any other status, a timeout, a transport
// error or an oversized answer is a refusal, and the next source is tried.
func (s *Service) checkExternal(ctx context.Context, g *grant, src *workspacev1.IdentitySource, username string) *identity {
	log := s.log.With("tenant", g.ws.tenantID, "server", g.ws.serverID, "idp", src.GetId())
	body, err := verifierBody(g, username)
	if err != nil {
		log.WarnContext(ctx, "external verifier request not encoded", "error", err)
		return nil
	}
	timeout := src.GetTimeout().AsDuration()
	if timeout <= 0 {
		timeout = defaultVerifierTimeout
	}
	timeout = min(timeout, maxVerifierTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, src.GetUrl(), bytes.NewReader(body))
	if err != nil {
		log.WarnContext(ctx, "external verifier URL unusable", "error", err)
		return nil
	}
	secret := s.keyring.DeriveSecret(secrets.PurposeExternalIdp, g.ws.tenantID, g.ws.serverID, src.GetId())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(signatureHeader, "sha256="+sign(secret, body))
	resp, err := s.verifiers.Do(req)
	if errors.Is(err, egress.ErrDenied) {
		// Configured where it was allowed, now at a denied address: a misconfiguration or an attack.
		log.WarnContext(ctx, "external verifier not called: its address is denied by the egress policy", "error", err)
		return nil
	}
	if err != nil {
		log.InfoContext(ctx, "external verifier unreachable", "error", err)
		return nil
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxVerifierResponse+1))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		log.DebugContext(ctx, "external verifier refused", "status", resp.StatusCode)
		return nil
	}
	if err != nil || len(raw) > maxVerifierResponse {
		log.WarnContext(ctx, "external verifier answer unreadable or too large", "status", resp.StatusCode, "error", err)
		return nil
	}
	id := &identity{subject: username}
	var ans verifierAnswer
	if len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &ans) == nil {
		if sub, ok := ans.Sub.(string); ok && sub != "" {
			id.subject = sub
		}
		if extra, ok := ans.ExtraInfo.(map[string]any); ok && len(extra) > 0 {
			id.extraInfo = extra
		}
	}
	if len(id.subject) > maxSubjectLength {
		log.WarnContext(ctx, "external verifier accepted with a subject too long to use", "length", len(id.subject))
		return nil
	}
	return id
}

// verifierBody is the JSON object sent to a verifier: every parameter of the token request but client_secret
// (user_name as username), the authenticated client_id, and where the request came: tenant_id, workspace_id.
func verifierBody(g *grant, username string) ([]byte, error) {
	body := make(map[string]string, len(g.req.GetParameters())+4)
	for k, v := range g.req.GetParameters() {
		body[k] = v
	}
	delete(body, "client_secret")
	delete(body, "user_name")
	// The request's own fields are authoritative (a gRPC caller may send no parameters at all).
	body["grant_type"] = g.req.GrantType
	body["username"] = username
	body["password"] = g.req.Password
	if g.req.Scope != "" {
		body["scope"] = g.req.Scope
	}
	body["client_id"] = g.client.id
	body["tenant_id"] = g.ws.tenantID
	body["workspace_id"] = g.ws.serverID
	return json.Marshal(body)
}

// sign is the hex HMAC-SHA256 of body under secret (the secret's text is the key).
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
