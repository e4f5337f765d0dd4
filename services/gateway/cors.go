package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	"github.com/authplane/authplane/pkg/cache"
	"github.com/authplane/authplane/pkg/changes"
)

// originsTTL bounds how long a missed announcement of a client change leaves the origins of a workspace stale.
const originsTTL = time.Minute

// corsOrigins caches, per workspace, the browser origins its clients allow (allowed_origins), dropped when the
// client service announces a change of a client of the tenant.
type corsOrigins struct {
	clients  clientv1.ClientServiceClient
	outgoing func(context.Context) context.Context
	cache    *cache.Cache[[]string] // tenant/server
}

func newCORSOrigins(clients clientv1.ClientServiceClient, outgoing func(context.Context) context.Context, bus *changes.Bus) *corsOrigins {
	o := &corsOrigins{clients: clients, outgoing: outgoing, cache: cache.New[[]string](originsTTL, 10000)}
	if bus != nil {
		drop := func(key string) {
			tenant, _, _ := strings.Cut(key, "/")
			if changes.IsEverything(key) || tenant == "" {
				o.cache.InvalidateAll()
				return
			}
			o.cache.InvalidatePrefix(tenant + "/")
		}
		bus.Subscribe(changes.Clients, drop)
		bus.Subscribe(changes.Tenants, drop)
	}
	return o
}

func (o *corsOrigins) allowed(ctx context.Context, tenantID, serverID, origin string) bool {
	if tenantID == "" || serverID == "" || strings.Contains(tenantID, "/") || strings.Contains(serverID, "/") {
		return false
	}
	list, err := o.cache.Get(ctx, tenantID+"/"+serverID, func(ctx context.Context) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		resp, err := o.clients.ListAllowedOrigins(o.outgoing(ctx), &clientv1.ListAllowedOriginsRequest{TenantId: tenantID, ServerId: serverID})
		if err != nil {
			return nil, err
		}
		return resp.Origins, nil
	})
	return err == nil && slices.Contains(list, origin)
}

// withCORS answers CORS (preflight and actual requests) at a workspace's endpoint for the exact origins some client
// of the workspace allows, and for no other: a request from any other origin gets no CORS header, so the browser
// keeps its answer from the page. Credentials (cookies) are never allowed: these endpoints authenticate by
// client credentials or Bearer tokens.
func (g *Gateway) withCORS(methods string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		ok := g.origins.allowed(r.Context(), r.PathValue("tenant_id"), r.PathValue("server_id"), origin)
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			if !ok {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate")
		}
		next(w, r)
	}
}
