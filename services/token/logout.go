package token

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/go-jose/go-jose/v4"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/db"
)

// idTokenHint is what logout reads of an id_token_hint: who it was issued to, and in which session.
type idTokenHint struct {
	Issuer   string `json:"iss"`
	Audience any    `json:"aud"`
	Session  string `json:"sid"`
}

// parseIDTokenHint verifies an ID token of this workspace (signature and issuer; an expired one is still a good
// hint, OpenID Connect RP-Initiated Logout section 2) and returns its client and session.
func (s *Service) parseIDTokenHint(ctx context.Context, ws *workspaceInfo, raw string) (clientID, sid string, ok bool, err error) {
	if len(raw) > maxTokenBytes {
		return "", "", false, nil
	}
	keys, err := s.workspaceKeys(ctx, ws)
	if err != nil {
		return "", "", false, err
	}
	jws, err := jose.ParseSigned(raw, authz.SignatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 || jws.Signatures[0].Header.ExtraHeaders["typ"] != idTokenType {
		return "", "", false, nil
	}
	var payload []byte
	for _, k := range keys.verify.Key(jws.Signatures[0].Header.KeyID) {
		if payload, err = jws.Verify(k); err == nil {
			break
		}
	}
	if payload == nil {
		return "", "", false, nil
	}
	var h idTokenHint
	if json.Unmarshal(payload, &h) != nil || h.Issuer != ws.issuer {
		return "", "", false, nil
	}
	switch aud := h.Audience.(type) {
	case string:
		clientID = aud
	case []any:
		if len(aud) == 1 {
			clientID, _ = aud[0].(string)
		}
	}
	return clientID, h.Session, clientID != "", nil
}

// Logout is RP-initiated logout: the browser session of the SSO cookie (and the one the id_token_hint was issued
// in) ends, with the app sessions it signed in, and the browser goes to a registered post_logout_redirect_uri
// with state, or sees the signed-out page. An unregistered post_logout_redirect_uri is an error page, never a
// redirect.
func (s *Service) Logout(ctx context.Context, req *tokenv1.LogoutRequest) (*tokenv1.BrowserResponse, error) {
	ws, err := s.workspace(ctx, req.TenantId, req.ServerId)
	if err != nil {
		return nil, err
	}
	p := req.Parameters
	clientID := p["client_id"]
	var hintSession string
	if hint := p["id_token_hint"]; hint != "" {
		aud, sid, ok, err := s.parseIDTokenHint(ctx, ws, hint)
		if err != nil {
			return nil, err
		}
		if !ok {
			return messagePage(ws, 400, "invalid_request", "The id_token_hint is not an ID token of this issuer."), nil
		}
		if clientID != "" && clientID != aud {
			return messagePage(ws, 400, "invalid_request", "The id_token_hint was not issued to client_id."), nil
		}
		clientID, hintSession = aud, sid
	}
	postLogout := p["post_logout_redirect_uri"]
	if postLogout != "" {
		if clientID == "" {
			return messagePage(ws, 400, "invalid_request", "post_logout_redirect_uri needs client_id or id_token_hint."), nil
		}
		client, err := s.browserClientOf(ctx, ws, clientID)
		if err != nil {
			return nil, err
		}
		if client == nil || !slices.Contains(client.postLogoutURIs, postLogout) {
			return messagePage(ws, 400, "invalid_request", "The post_logout_redirect_uri is not registered for this application."), nil
		}
	}
	now := s.now()
	var ended []string
	if sess, _, err := s.browserSessionOf(ctx, ws, req.GetCookies().GetSession(), now); err != nil {
		return nil, err
	} else if sess != nil {
		ended = append(ended, sess.ID)
	}
	if hintSession != "" {
		// The hint names an app session; its browser session is what signs the user out everywhere.
		sess, err := s.store.session(ctx, ws.tenantID, hintSession)
		switch {
		case err == nil && sess.ServerID == ws.serverID && sess.ParentID != "":
			ended = append(ended, sess.ParentID)
		case err == nil && sess.ServerID == ws.serverID:
			ended = append(ended, sess.ID)
		case err != nil && !db.IsNotFound(err):
			return nil, apierr.Wrap(err, "read session")
		}
	}
	for _, id := range ended {
		if err := s.endSessions(ctx, ws.tenantID, endLogout, "id = ? OR parent_id = ?", id, id); err != nil {
			return nil, err
		}
	}
	out := &tokenv1.BrowserResponse{ClearSession: true}
	if postLogout != "" {
		out.Outcome = &tokenv1.BrowserResponse_RedirectTo{RedirectTo: logoutRedirect(postLogout, p["state"])}
		return out, nil
	}
	page := messagePage(ws, 200, "", "You are signed out.")
	out.Outcome = page.Outcome
	return out, nil
}

// logoutRedirect is the post-logout redirect URI with state added to its query.
func logoutRedirect(uri, state string) string {
	if state == "" {
		return uri
	}
	return withQuery(uri, map[string]string{"state": state})
}
