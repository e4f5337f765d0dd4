package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	"github.com/authplane/authplane/pkg/apierr"
)

// idTokenType is the JOSE `typ` of ID tokens: plain `JWT`, so an ID token is never taken for an access token.
const idTokenType = "JWT"

// defaultIDTokenTTL applies when the workspace sets no id_token_ttl.
const defaultIDTokenTTL = time.Hour

// Which profile claims each scope releases (OpenID Connect Core section 5.4).
var scopeClaims = map[string][]string{
	"profile": {"name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile",
		"picture", "website", "gender", "birthdate", "zoneinfo", "locale"},
	"email":   {"email", "email_verified"},
	"phone":   {"phone_number", "phone_number_verified"},
	"address": {"address"},
}

// releasedClaims returns the claims of all that the space-separated scope allows.
func releasedClaims(all map[string]any, scope string) map[string]any {
	out := map[string]any{}
	for sc := range strings.FieldsSeq(scope) {
		for _, name := range scopeClaims[sc] {
			if v, ok := all[name]; ok {
				out[name] = v
			}
		}
	}
	return out
}

// userClaims reads a pool user's profile claims: the standard claims found in its payload, its email and mobile
// identifiers (before a payload's email or phone_number), and `name` made of the given and family names when the
// payload has none. A pool does not record whether an address was verified, so *_verified is taken from the
// payload and is false otherwise.
func userClaims(u *poolv1.User) map[string]any {
	c := map[string]any{}
	payload := u.GetPayload().AsMap()
	for _, names := range scopeClaims {
		for _, name := range names {
			switch v := payload[name].(type) {
			case string:
				if v != "" && name != "address" {
					c[name] = v
				}
			case bool:
				if strings.HasSuffix(name, "_verified") {
					c[name] = v
				}
			case map[string]any: // an address is an object (section 5.1.1)
				if name == "address" {
					c[name] = v
				}
			}
		}
	}
	fromIdentifier := map[string]bool{}
	for _, id := range u.GetIdentifiers() {
		claim := map[string]string{"email": "email", "mobile": "phone_number"}[id.GetType()]
		if claim != "" && !fromIdentifier[claim] { // the first of its type
			c[claim], fromIdentifier[claim] = id.GetIdentifier(), true
		}
	}
	if _, ok := c["name"]; !ok {
		given, _ := c["given_name"].(string)
		family, _ := c["family_name"].(string)
		if name := strings.TrimSpace(given + " " + family); name != "" {
			c["name"] = name
		}
	}
	for claim, verified := range map[string]string{"email": "email_verified", "phone_number": "phone_number_verified"} {
		if _, ok := c[claim]; !ok {
			delete(c, verified)
			continue
		}
		if _, ok := c[verified].(bool); !ok {
			c[verified] = false
		}
	}
	return c
}

// issueIDToken signs the ID token of a login in session sid (OpenID Connect Core section 2): the audience is the client, the
// lifetime the workspace's id_token_ttl, and the profile claims are those the granted scope releases.
func (s *Service) issueIDToken(ctx context.Context, g *grant, l *login, sid string) (string, error) {
	return s.issueIDTokenWith(ctx, g, l, sid, idTokenExtras{})
}

// idTokenExtras are the claims of an ID token issued at the end of the authorization code flow (OpenID Connect
// Core section 3.1.3.6): the request's nonce and at_hash of the access token issued with it.
type idTokenExtras struct {
	nonce       string
	accessToken string
}

// atHash is the at_hash of an access token: the left half of its SHA-256 (the hash of ES256), base64url.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

func (s *Service) issueIDTokenWith(ctx context.Context, g *grant, l *login, sid string, extra idTokenExtras) (string, error) {
	keys, err := s.workspaceKeys(ctx, g.ws)
	if err != nil {
		return "", err
	}
	ttl := g.ws.md.GetIdTokenTtl().AsDuration()
	if ttl < time.Second {
		ttl = defaultIDTokenTTL
	}
	now := s.now().Unix()
	claims := releasedClaims(l.Claims, l.Scope)
	claims["iss"] = g.ws.issuer
	claims["sub"] = l.Subject
	claims["aud"] = g.client.id
	claims["azp"] = g.client.id
	claims["exp"] = now + int64(ttl/time.Second)
	claims["iat"] = now
	claims["auth_time"] = l.AuthTime
	claims["sid"] = sid
	if l.IdpID != "" {
		claims["idp"] = l.IdpID
	}
	if extra.nonce != "" {
		claims["nonce"] = extra.nonce
	}
	if extra.accessToken != "" {
		claims["at_hash"] = atHash(extra.accessToken)
	}
	if err := s.coverExpiry(ctx, g.ws, keys, claims["exp"].(int64)); err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", apierr.Wrap(err, "encode ID token claims")
	}
	tok, err := keys.idSigner.sign(payload)
	if err != nil {
		return "", apierr.Wrap(err, "sign ID token")
	}
	return tok, nil
}
