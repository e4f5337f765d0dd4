package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
	"github.com/authplane/authplane/pkg/testenv/testdns"
)

// runAsAuthplane makes the test binary the authplane binary for its child processes (see TestMain): the test
// starts real processes of the real command, which it can kill as the kernel kills a process, with no chance to
// close a connection or finish a request.
const runAsAuthplane = "AUTHPLANE_TEST_RUN_AS_AUTHPLANE"

func TestMain(m *testing.M) {
	if os.Getenv(runAsAuthplane) == "1" {
		os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestReplicasSurviveAKill runs two token replicas, two pool replicas, one process with the other services and two
// gateways, each a process of its own on PostgreSQL, and sends client_credentials and password grants through
// both gateways from several workers. It kills (SIGKILL) one token replica, then one pool replica, then one
// gateway, while the load goes on; then starts each again on the same addresses. Half the processes are given
// their peers as comma lists, half as dns:/// names (answered by a DNS server of the test's own).
//
// The only failed requests allowed are those in flight on a killed process: a request fails only if it started
// before that process was dead and ended after the kill was sent, and
//   - through a gateway that was killed, it failed in transport (the connection died under it);
//   - otherwise it is a password grant answered 503 temporarily_unavailable (the token or pool replica under it
//     died; client_credentials requests are sent again by the gateway, so none of them fails that way).
//
// Each restarted process then gets traffic again (its own request counters, from its /metrics).
func TestReplicasSurviveAKill(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, testenv.Postgres)
	const masterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	const rootSecret = "replicas-kill-root-secret"
	logDir := t.TempDir()

	// Replicas of a service listen on the same port of 127.0.0.1 and 127.0.0.2, so that one DNS name with two
	// addresses reaches both (a DNS answer carries no port).
	dns := testdns.Start(t)
	tokenPort, poolPort := portOnBothLoopbacks(t), portOnBothLoopbacks(t)
	loopbacks := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
	dns.Set("token.replicas.test", loopbacks...)
	dns.Set("pool.replicas.test", loopbacks...)
	if got, err := dns.Resolver().LookupHost(context.Background(), "token.replicas.test"); err != nil || len(got) != 2 {
		t.Fatalf("the test's DNS server: %v %v", got, err)
	}
	coreGRPC := freeAddr(t, "127.0.0.1")
	listForm := map[string]string{
		svc.Token: fmt.Sprintf("127.0.0.1:%d,127.0.0.2:%d", tokenPort, tokenPort),
		svc.Pool:  fmt.Sprintf("127.0.0.1:%d,127.0.0.2:%d", poolPort, poolPort),
	}
	dnsForm := map[string]string{
		svc.Token: fmt.Sprintf("dns://%s/token.replicas.test:%d", dns.Addr(), tokenPort),
		svc.Pool:  fmt.Sprintf("dns://%s/pool.replicas.test:%d", dns.Addr(), poolPort),
	}
	for _, form := range []map[string]string{listForm, dnsForm} {
		for _, s := range []string{svc.Tenant, svc.Workspace, svc.Schema, svc.Client} {
			form[s] = coreGRPC
		}
	}
	gw1HTTP, gw2HTTP := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	issuer := "http://" + gw1HTTP
	newChild := func(name string, services []string, httpAddr, grpcAddr string, peers map[string]string) *child {
		env := map[string]string{
			"AUTHPLANE_SERVICES": strings.Join(services, ","), "AUTHPLANE_HTTP_ADDR": httpAddr, "AUTHPLANE_GRPC_ADDR": grpcAddr,
			"AUTHPLANE_DATABASE_URL": dbURL, "AUTHPLANE_MASTER_KEY": masterKey, "AUTHPLANE_ISSUER_URL": issuer,
			"AUTHPLANE_ROOT_CLIENT_ID": "root-operator", "AUTHPLANE_ROOT_CLIENT_SECRET": rootSecret,
		}
		for s, a := range peers {
			if !slices.Contains(services, s) {
				env["AUTHPLANE_"+strings.ToUpper(s)+"_ADDR"] = a
			}
		}
		return &child{name: name, httpAddr: httpAddr, env: env, logPath: filepath.Join(logDir, name+".log")}
	}
	core := newChild("core", []string{svc.Tenant, svc.Workspace, svc.Schema, svc.Client}, freeAddr(t, "127.0.0.1"), coreGRPC, listForm)
	token1 := newChild("token-1", []string{svc.Token}, freeAddr(t, "127.0.0.1"), fmt.Sprintf("127.0.0.1:%d", tokenPort), listForm)
	token2 := newChild("token-2", []string{svc.Token}, freeAddr(t, "127.0.0.2"), fmt.Sprintf("127.0.0.2:%d", tokenPort), dnsForm)
	pool1 := newChild("pool-1", []string{svc.Pool}, freeAddr(t, "127.0.0.1"), fmt.Sprintf("127.0.0.1:%d", poolPort), listForm)
	pool2 := newChild("pool-2", []string{svc.Pool}, freeAddr(t, "127.0.0.2"), fmt.Sprintf("127.0.0.2:%d", poolPort), dnsForm)
	gateway1 := newChild("gateway-1", []string{svc.Gateway}, gw1HTTP, freeAddr(t, "127.0.0.1"), listForm)
	gateway2 := newChild("gateway-2", []string{svc.Gateway}, gw2HTTP, freeAddr(t, "127.0.0.1"), dnsForm)
	all := []*child{core, token1, token2, pool1, pool2, gateway1, gateway2}
	t.Cleanup(func() {
		for _, c := range all {
			c.stop(t)
		}
		if t.Failed() {
			for _, c := range all {
				c.logTail(t, 15)
			}
		}
	})
	for _, c := range all { // all at once, as a deployment's first start on a new database does
		c.start(t)
	}
	for _, c := range all {
		c.waitReady(t)
	}

	admin := &testenv.Env{HTTPURL: "http://" + gw1HTTP, HTTP: &http.Client{Timeout: 30 * time.Second},
		RootClientID: "root-operator", RootSecret: rootSecret}
	iss := admin.NewIssuance(t, "acme")

	// What an HTTP load balancer in front of the gateways does: each request to the next gateway in turn, and past
	// one that refuses the connection (nothing reached it). Without keep-alive, a request is its own connection, so
	// that one a gateway accepted and then lost is told apart from one that never reached it.
	balancer := &gatewayBalancer{addrs: []string{gw1HTTP, gw2HTTP}}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: balancer.dial, DisableKeepAlives: true}}
	var (
		served   sync.Map // "worker/seq" → the gateway that accepted the request
		password sync.Map // "worker/seq" of password grants
	)
	load := testenv.StartLoad(t, 6, func(worker, seq int) error {
		key := fmt.Sprint(worker, "/", seq)
		isPassword := seq%2 == 1
		if isPassword {
			password.Store(key, true)
		}
		req := iss.TokenRequest("http://gateways", isPassword)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { served.Store(key, info.Conn.RemoteAddr().String()) },
		}))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		return testenv.CheckTokenResponse(resp)
	})

	tokenCalls := func(c *child) float64 {
		return c.counter(t, "authplane_grpc_requests_total", map[string]string{"method": "/authplane.token.v1.TokenService/Token"})
	}
	passwordChecks := func(c *child) float64 {
		return c.counter(t, "authplane_grpc_requests_total", map[string]string{"method": "/authplane.pool.v1.PoolService/AuthenticatePassword"})
	}
	tokenRequests := func(c *child) float64 {
		return c.counter(t, "authplane_http_requests_total", map[string]string{"route": "/{tenant_id}/{server_id}/oauth2/token"})
	}
	// Every replica takes its share before any is killed.
	waitUntil(t, "every replica serves", func() bool {
		return tokenCalls(token1) > 0 && tokenCalls(token2) > 0 && passwordChecks(pool1) > 0 && passwordChecks(pool2) > 0 &&
			tokenRequests(gateway1) > 0 && tokenRequests(gateway2) > 0
	})

	type kill struct {
		victim     *child
		sent, dead int64 // ticks of the load's clock
	}
	var kills []kill
	for _, victim := range []*child{token1, pool1, gateway1} {
		load.WaitForSuccesses(60)
		k := kill{victim: victim, sent: load.Mark()}
		victim.kill(t)
		k.dead = load.Mark()
		kills = append(kills, k)
	}
	load.WaitForSuccesses(60)

	// Back on the same addresses, each gets traffic again: its counters start from zero.
	for _, c := range []*child{token1, pool1, gateway1} {
		c.start(t)
	}
	for _, c := range []*child{token1, pool1, gateway1} {
		c.waitReady(t)
	}
	waitUntil(t, "the restarted replicas serve again", func() bool {
		return tokenCalls(token1) > 0 && passwordChecks(pool1) > 0 && tokenRequests(gateway1) > 0
	})
	load.WaitForSuccesses(60)
	results := load.Stop()

	inFlight := func(r testenv.Result, k kill) bool { return r.Start < k.dead && r.End > k.sent }
	failedAt := map[string]int{}
	failures := 0
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		failures++
		key := fmt.Sprint(r.Worker, "/", r.Seq)
		gw, _ := served.Load(key)
		_, isPassword := password.Load(key)
		var answer *testenv.TokenAnswerError
		explained := ""
		for _, k := range kills {
			if !inFlight(r, k) {
				continue
			}
			switch {
			case k.victim.isGateway() && gw == k.victim.httpAddr && !errors.As(r.Err, &answer):
				explained = k.victim.name
			case !k.victim.isGateway() && isPassword && errors.As(r.Err, &answer) && answer.Status == http.StatusServiceUnavailable &&
				strings.Contains(answer.Body, `"temporarily_unavailable"`):
				explained = k.victim.name
			}
		}
		if explained == "" {
			t.Errorf("request %s (password grant: %v, through %v) failed, and was not in flight on a killed process in a way that explains it: %v",
				key, isPassword, gw, r.Err)
			continue
		}
		failedAt[explained]++
	}
	t.Logf("%d requests, %d failed: %v (in flight on each killed process); after the restarts token-1 served %v token requests, pool-1 %v password checks, gateway-1 %v token requests",
		len(results), failures, failedAt, tokenCalls(token1), passwordChecks(pool1), tokenRequests(gateway1))
}

// child is an authplane process the test runs, kills and starts again with the same configuration.
type child struct {
	name     string
	httpAddr string
	env      map[string]string
	logPath  string

	cmd    *exec.Cmd
	exited chan struct{}
	killed bool
}

func (c *child) isGateway() bool { return c.env["AUTHPLANE_SERVICES"] == svc.Gateway }

func (c *child) start(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(os.Args[0], "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUTHPLANE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runAsAuthplane+"=1")
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", c.name, err)
	}
	c.cmd, c.exited, c.killed = cmd, make(chan struct{}), false
	go func() { _ = cmd.Wait(); close(c.exited) }()
}

// waitReady waits for /readyz to answer 200, failing the test if the process exits first.
func (c *child) waitReady(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-c.exited:
			c.logTail(t, 30)
			t.Fatalf("%s exited before it was ready", c.name)
		default:
		}
		if resp, err := client.Get("http://" + c.httpAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 2 minutes", c.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is gone: its sockets are closed by the kernel, mid-request.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", c.name, err)
	}
	<-c.exited
	c.killed = true
}

// stop ends a process still running at the end of the test as an orchestrator does, with SIGTERM: it must exit
// 0 (under the race detector, a race found in it exits 66), within 30 s.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if c.cmd == nil || c.killed {
		return
	}
	select {
	case <-c.exited:
		t.Errorf("%s exited by itself: %v", c.name, c.cmd.ProcessState)
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		if code := c.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited %d on SIGTERM", c.name, code)
		}
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		t.Errorf("%s still running 30 s after SIGTERM", c.name)
	}
}

func (c *child) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return testenv.Counter(t, &http.Client{Timeout: 5 * time.Second}, "http://"+c.httpAddr+"/metrics", name, labels)
}

func (c *child) logTail(t *testing.T, n int) {
	f, err := os.Open(c.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("last lines of %s's log:\n%s", c.name, strings.Join(lines, "\n"))
}

// gatewayBalancer spreads connections over the gateways in turn, skipping one that refuses the connection.
type gatewayBalancer struct {
	addrs []string
	next  atomic.Uint64
}

func (b *gatewayBalancer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	start := b.next.Add(1)
	var d net.Dialer
	var err error
	for i := range b.addrs {
		var c net.Conn
		if c, err = d.DialContext(ctx, network, b.addrs[(int(start)+i)%len(b.addrs)]); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// freeAddr is a free port on ip, as host:port (the processes listen on it themselves).
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// portOnBothLoopbacks is a port free on 127.0.0.1 and on 127.0.0.2.
func portOnBothLoopbacks(t *testing.T) int {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		second, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
		first.Close()
		if err == nil {
			second.Close()
			return port
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return 0
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within a minute: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
