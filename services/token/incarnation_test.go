package token

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/protobuf/proto"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/changes"
)

// verifierOf is pkg/authz's verifier over the service's JWKS, as the admin plane uses it.
func verifierOf(h *harness) *authz.Verifier {
	source := func(ctx context.Context, tenant, server string) (*jose.JSONWebKeySet, error) {
		resp, err := h.svc.GetJWKS(ctx, &tokenv1.GetJWKSRequest{TenantId: tenant, ServerId: server})
		if err != nil {
			return nil, err
		}
		raw, _ := json.Marshal(map[string]any{"keys": resp.Keys})
		var set jose.JSONWebKeySet
		return &set, json.Unmarshal(raw, &set)
	}
	return authz.NewVerifier(issuerBase, source, h.bus)
}

func headerKid(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Headers[0].KeyID
}

func kids(t *testing.T, h *harness) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, k := range jwks(t, h.svc, "acme", "orders").Keys {
		out[k.KeyID] = true
	}
	return out
}

func TestRecreatedWorkspaceNeverUsesKeysOfTheDeletedOne(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		h := newHarness(t, url)
		ctx := context.Background()
		verifier := verifierOf(h)
		issue := func() string {
			t.Helper()
			resp, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
			if err != nil {
				t.Fatal(err)
			}
			return resp.AccessToken
		}
		before := issue()
		if _, err := verifier.Verify(ctx, before); err != nil {
			t.Fatal(err)
		}

		// The deletion as the workspace service runs it: keys first, then the row. In between the workspace
		// still exists, and a token request makes it a new key: a key of the incarnation being deleted.
		if _, err := h.svc.DeleteServerKeys(ctx, &tokenv1.DeleteServerKeysRequest{TenantId: "acme", ServerId: "orders"}); err != nil {
			t.Fatal(err)
		}
		during := issue()
		md, _ := h.ws.GetServerMetadata(ctx, &workspacev1.GetServerMetadataRequest{TenantId: "acme", ServerId: "orders"})
		h.ws.mu.Lock()
		delete(h.ws.servers, "acme/orders")
		h.ws.mu.Unlock()
		h.bus.Publish(ctx, changes.Servers, changes.Key("acme", "orders"))
		h.bus.Publish(ctx, changes.Keys, changes.Key("acme", "orders"))

		// Created again under the same id: a new incarnation.
		again := proto.Clone(md).(*workspacev1.ServerMetadata)
		again.Uid = "orders-2"
		h.ws.put(again)
		h.bus.Publish(ctx, changes.Servers, changes.Key("acme", "orders"))
		h.bus.Publish(ctx, changes.Keys, changes.Key("acme", "orders"))

		served := kids(t, h)
		for name, tok := range map[string]string{"before the deletion": before, "during the deletion": during} {
			if served[headerKid(t, tok)] {
				t.Errorf("the re-created workspace serves the key of a token issued %s", name)
			}
			if _, err := verifier.Verify(ctx, tok); err == nil {
				t.Errorf("a token issued %s verifies against the re-created workspace", name)
			}
		}
		after := issue()
		// The new incarnation's current and next key.
		if served := kids(t, h); len(served) != 2 || !served[headerKid(t, after)] {
			t.Fatalf("JWKS %v, new token's kid %s", served, headerKid(t, after))
		}
		if _, err := verifier.Verify(ctx, after); err != nil {
			t.Fatalf("a token of the new incarnation does not verify: %v", err)
		}
		var rows []keyRow
		if err := h.db.Where("tenant_id = ?", "acme").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.ServerUID != "orders-2" {
				t.Errorf("key %s of incarnation %q was kept", r.KID, r.ServerUID)
			}
		}
	})
}

func TestStaleWorkspaceCacheNeverDeletesTheCurrentKeys(t *testing.T) {
	h := newHarness(t, sqliteURL(t))
	ctx := context.Background()
	if _, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", "")); err != nil { // caches incarnation orders-1
		t.Fatal(err)
	}
	// Another process deleted and re-created the workspace and made the new incarnation's key; this process
	// missed every announcement but the key one.
	if _, err := h.svc.DeleteServerKeys(ctx, &tokenv1.DeleteServerKeysRequest{TenantId: "acme", ServerId: "orders"}); err != nil {
		t.Fatal(err)
	}
	current, err := newKeyRow(h.deps.Keyring, "acme", "orders", "orders-2", 1, algES256, stateCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.store.insertKey(ctx, current); err != nil {
		t.Fatal(err)
	}
	md, _ := h.ws.GetServerMetadata(ctx, &workspacev1.GetServerMetadataRequest{TenantId: "acme", ServerId: "orders"})
	md.Uid = "orders-2"
	h.ws.put(md)

	_, err = h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
	if d := apierr.Describe(err); err == nil || d.ErrorCode != "temporarily_unavailable" {
		t.Fatalf("a request on a stale incarnation: %v, want temporarily_unavailable", err)
	}
	resp, err := h.svc.Token(ctx, ccRequest("cli-1", "secret-1", ""))
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if kid := headerKid(t, resp.AccessToken); kid != current.KID {
		t.Fatalf("signed with %s, want the current incarnation's key %s", kid, current.KID)
	}
}
