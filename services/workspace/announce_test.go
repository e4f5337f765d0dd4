package workspace_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/inproc"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/services/workspace"
)

// pools stands in for the pool service: every pool exists.
type pools struct {
	poolv1.UnimplementedPoolServiceServer
}

func (pools) PoolExists(context.Context, *poolv1.PoolExistsRequest) (*poolv1.PoolExistsResponse, error) {
	return &poolv1.PoolExistsResponse{Exists: true}, nil
}

// The data plane caches a workspace's metadata, identity sources included, until the workspace is announced as
// changed: every identity source change must be announced, and only after it is committed.
func TestIdpChangesAreAnnouncedForTheirWorkspace(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		d, err := db.Open(ctx, testenv.DatabaseURL(t, b))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		keyring, err := secrets.NewKeyring(make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		poolConn := inproc.New(nil)
		poolv1.RegisterPoolServiceServer(poolConn, pools{})
		bus := changes.NewMemory()
		s, err := workspace.New(ctx, svc.Deps{DB: d, Bus: bus, Keyring: keyring, Internal: internalcall.New(keyring, "test"),
			Conns: svc.Conns{Pool: poolConn, Client: inproc.New(nil), Token: inproc.New(nil)}})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var announced []string
		var sourcesSeen []int // how many sources the metadata had when each announcement arrived
		bus.Subscribe(changes.Servers, func(key string) {
			md, err := s.GetServerMetadata(ctx, &workspacev1.GetServerMetadataRequest{TenantId: "acme", ServerId: "ws"})
			mu.Lock()
			defer mu.Unlock()
			announced = append(announced, key)
			if err == nil {
				sourcesSeen = append(sourcesSeen, len(md.IdentitySources))
			}
		})
		if _, err := s.CreateServer(ctx, &workspacev1.CreateServerRequest{TenantId: "acme", Server: &workspacev1.Server{Id: "ws"}}); err != nil {
			t.Fatal(err)
		}
		announced, sourcesSeen = nil, nil

		pool, err := s.CreateIdentityPoolIdp(ctx, &workspacev1.CreateIdentityPoolIdpRequest{TenantId: "acme", ServerId: "ws",
			Idp: &workspacev1.Idp{Name: "Customers", IdentityPoolId: "customers"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateExternalIdp(ctx, &workspacev1.CreateExternalIdpRequest{TenantId: "acme", ServerId: "ws",
			Idp: &workspacev1.Idp{Name: "Legacy", Url: "https://v.example.com/verify"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteIdp(ctx, &workspacev1.DeleteIdpRequest{TenantId: "acme", ServerId: "ws", IdpId: pool.Id}); err != nil {
			t.Fatal(err)
		}
		// Refused changes announce nothing.
		_, _ = s.DeleteIdp(ctx, &workspacev1.DeleteIdpRequest{TenantId: "acme", ServerId: "ws", IdpId: pool.Id})
		_, _ = s.CreateExternalIdp(ctx, &workspacev1.CreateExternalIdpRequest{TenantId: "acme", ServerId: "ws",
			Idp: &workspacev1.Idp{Name: "Bad", Url: "not a url"}})

		mu.Lock()
		defer mu.Unlock()
		if want := []string{"acme/ws", "acme/ws", "acme/ws"}; !slices.Equal(announced, want) {
			t.Fatalf("announced %v, want %v", announced, want)
		}
		if want := []int{1, 2, 1}; !slices.Equal(sourcesSeen, want) {
			t.Fatalf("sources in the metadata at each announcement: %v, want %v (announced after commit)", sourcesSeen, want)
		}
	})
}
