package tenant_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
)

// TestConcurrentCreationsOfOneTenant: the primary key decides, so exactly one creation wins and the others get
// 409 without provisioning anything (one admin client, not several).
func TestConcurrentCreationsOfOneTenant(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		env := testenv.Start(t, testenv.WithBackend(b))
		root := env.RootToken(t)
		const n = 6
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = env.CallJSON(t, "POST", "/api/admin/tenants", root, map[string]string{"id": "acme"}, nil)
			}()
		}
		wg.Wait()
		created, conflicts := 0, 0
		for _, c := range codes {
			switch c {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				conflicts++
			}
		}
		if created != 1 || conflicts != n-1 {
			t.Fatalf("statuses %v: want one 201 and %d 409", codes, n-1)
		}
		d, err := db.Open(t.Context(), env.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var clients int64
		d.Raw("SELECT COUNT(*) FROM client_clients WHERE tenant_id = ?", "acme").Scan(&clients)
		if clients != 1 {
			t.Fatalf("%d admin clients were made, want 1", clients)
		}
	})
}

// TestFailedCreationLeavesNothing: when a service the creation needs is down, the creation fails and what was
// already provisioned is removed, so the id is free and no half-made tenant is listed.
func TestFailedCreationLeavesNothing(t *testing.T) {
	// The client service runs in a process of its own, which stops once the operator's token has been checked
	// (and its client's standing cached) by the process that serves the operator API: then the admin client
	// cannot be made.
	mainHTTP, mainGRPC, clientHTTP, clientGRPC := testenv.Listen(t), testenv.Listen(t), testenv.Listen(t), testenv.Listen(t)
	env := testenv.Start(t, testenv.WithListeners(mainHTTP, mainGRPC),
		testenv.WithServices([]string{svc.Gateway, svc.Tenant, svc.Workspace, svc.Pool, svc.Schema, svc.Token},
			map[string]string{svc.Client: clientGRPC.Addr().String()}))
	clients := testenv.Start(t, testenv.WithListeners(clientHTTP, clientGRPC), testenv.WithDatabase(env.DatabaseURL, env.MasterKey),
		testenv.WithIssuer(env.HTTPURL), testenv.WithRootSecret(env.RootSecret),
		testenv.WithServices([]string{svc.Client}, map[string]string{svc.Token: mainGRPC.Addr().String(), svc.Workspace: mainGRPC.Addr().String()}))
	d, err := db.Open(t.Context(), env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	root := env.RootToken(t)
	if code := env.CallJSON(t, "GET", "/api/admin/tenants", root, nil, nil); code != http.StatusOK {
		t.Fatalf("the operator's token: %d", code)
	}
	clients.Stop()

	var body map[string]any
	if code := env.CallJSON(t, "POST", "/api/admin/tenants", root, map[string]string{"id": "acme"}, &body); code != http.StatusServiceUnavailable {
		t.Fatalf("creation without the client service: %d %v, want 503", code, body)
	}
	var tenants, servers int64
	d.Raw("SELECT COUNT(*) FROM tenant_tenants WHERE id = ?", "acme").Scan(&tenants)
	d.Raw("SELECT COUNT(*) FROM workspace_servers WHERE tenant_id = ?", "acme").Scan(&servers)
	if tenants != 0 || servers != 0 {
		t.Fatalf("half-made tenant left: %d tenant rows, %d workspaces", tenants, servers)
	}
	if code := env.CallJSON(t, "GET", "/api/admin/tenants/acme", root, nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET after a failed creation: %d", code)
	}
}
