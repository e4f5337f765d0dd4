package app_test

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/authplane/authplane/pkg/config"
	"github.com/authplane/authplane/pkg/svc"
	"github.com/authplane/authplane/pkg/testenv"
)

// TestMicroservicesTopology runs the gateway, the token service and the client service as separate servers
// (the other services in a fourth), reaching each other only over gRPC, and issues tokens through them.
func TestMicroservicesTopology(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		dbURL := testenv.DatabaseURL(t, b)
		masterKey := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		rootSecret := "topology-root-secret"
		groups := [][]string{
			{svc.Tenant, svc.Workspace, svc.Pool, svc.Schema},
			{svc.Client},
			{svc.Token},
			{svc.Gateway},
		}
		httpLns, grpcLns := make([]net.Listener, len(groups)), make([]net.Listener, len(groups))
		addrs := map[string]string{}
		for i, g := range groups {
			httpLns[i], grpcLns[i] = testenv.Listen(t), testenv.Listen(t)
			for _, name := range g {
				addrs[name] = grpcLns[i].Addr().String()
			}
		}
		issuer := "http://" + httpLns[len(groups)-1].Addr().String()
		envs := make([]*testenv.Env, len(groups))
		for i, g := range groups {
			envs[i] = testenv.Start(t, testenv.WithDatabase(dbURL, masterKey), testenv.WithServices(g, addrs),
				testenv.WithListeners(httpLns[i], grpcLns[i]), testenv.WithIssuer(issuer), testenv.WithRootSecret(rootSecret))
		}
		gateway := envs[len(groups)-1]

		acme := gateway.NewTenant(t, "acme")
		id, secret := gateway.CreateClient(t, "acme", acme.AdminToken, map[string]any{
			"authorization_server_id": "admin", "client_name": "ops", "scopes": []string{"read_configuration"},
		})
		readToken := gateway.Token(t, "acme", "admin", id, secret, "read_configuration")
		if code := gateway.CallJSON(t, "GET", "/api/admin/acme/servers", readToken, nil, nil); code != http.StatusOK {
			t.Fatalf("a read_configuration token lists workspaces through the topology: status %d", code)
		}
		if code := gateway.CallJSON(t, "POST", "/api/admin/acme/servers", readToken, map[string]string{"id": "x"}, nil); code != http.StatusForbidden {
			t.Fatalf("a read_configuration token must not write: status %d", code)
		}

		if b != testenv.Postgres {
			return // cross-process cache invalidation travels through PostgreSQL
		}
		var rotated struct {
			ClientSecret string `json:"client_secret"`
		}
		if code := gateway.CallJSON(t, "POST", "/api/admin/acme/clients/"+id+"/rotate-secret", acme.AdminToken, map[string]any{}, &rotated); code != http.StatusOK {
			t.Fatalf("rotate: %d", code)
		}
		// The token process cached the old secret's authentication; the client process's announcement must reach it.
		waitFor(t, func() bool { return tokenStatus(t, gateway, id, secret) == http.StatusUnauthorized })
		if got := tokenStatus(t, gateway, id, rotated.ClientSecret); got != http.StatusOK {
			t.Fatalf("the rotated secret: status %d", got)
		}

		// A revocation made by the token process reaches the workspace process's interceptor, which reads the
		// denylist from the token process.
		admin, workspaces := adminCall("acme"), envs[0].GRPC
		revoked := gateway.Token(t, "acme", "admin", acme.AdminID, acme.AdminSecret)
		mustOpen(t, gateway, workspaces, admin, revoked, "a fresh admin token through the topology")
		revokeToken(t, gateway, "acme", "admin", acme.AdminID, acme.AdminSecret, revoked)
		waitFor(t, func() bool { return isRefused(t, gateway, workspaces, admin, revoked) })
		mustOpen(t, gateway, workspaces, admin, acme.AdminToken, "the admin token nobody revoked")
	})
}

// TestComposeFileRunsKnownServices reads docker-compose.yml (no Docker engine runs here) and checks that each
// authplane container runs services the binary knows, that all of them are deployed, that every address a
// container is given points at the container that runs that service, that the master key comes from a file, and
// that every container has a health check the distroless image can run, which the containers that wait on it use.
func TestComposeFileRunsKnownServices(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Secrets     []string          `yaml:"secrets"`
			Healthcheck *struct {
				Test    []string `yaml:"test"`
				Timeout string   `yaml:"timeout"`
			} `yaml:"healthcheck"`
			DependsOn map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
		Secrets map[string]struct {
			File        string `yaml:"file"`
			Environment string `yaml:"environment"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	runs := map[string]string{} // service -> container
	for container, c := range compose.Services {
		if len(c.Command) == 0 || c.Command[0] != "serve" {
			continue
		}
		cfg, err := config.Parse(c.Command[1:], func(k string) string { return c.Environment[k] })
		if err != nil {
			t.Fatalf("container %s: %v", container, err)
		}
		if slices.Equal(cfg.Services, svc.All) {
			t.Errorf("container %s runs every service; the compose file is the microservices deployment", container)
		}
		for _, s := range cfg.Services {
			if other, dup := runs[s]; dup {
				t.Errorf("service %s runs in both %s and %s", s, other, container)
			}
			runs[s] = container
		}
		if !strings.HasPrefix(c.Environment["AUTHPLANE_DATABASE_URL"], "postgres://") {
			t.Errorf("container %s does not use PostgreSQL", container)
		}
		// The master key must be the same at every `up`: read from a file the operator made once, never a value
		// given (or generated) on the command line.
		if _, given := c.Environment["AUTHPLANE_MASTER_KEY"]; given {
			t.Errorf("container %s takes AUTHPLANE_MASTER_KEY from the environment of `up`", container)
		}
		secret, ok := strings.CutPrefix(cfg.MasterKeyFile, "/run/secrets/")
		if !ok || !slices.Contains(c.Secrets, secret) {
			t.Errorf("container %s reads its master key from %q, not from a secret it is given (%v)", container, cfg.MasterKeyFile, c.Secrets)
		} else if s := compose.Secrets[secret]; s.File == "" || s.Environment != "" {
			t.Errorf("secret %s is not a file (%+v): the master key must persist between runs", secret, s)
		}
	}
	for _, s := range svc.All {
		if runs[s] == "" {
			t.Errorf("no container runs the %s service", s)
		}
	}
	for container, c := range compose.Services {
		for _, s := range svc.All {
			addr := c.Environment["AUTHPLANE_"+strings.ToUpper(s)+"_ADDR"]
			if addr == "" {
				continue
			}
			hosts, err := serviceHosts(addr)
			if err != nil {
				t.Errorf("container %s: AUTHPLANE_%s_ADDR: %v", container, strings.ToUpper(s), err)
			}
			for _, host := range hosts {
				if host != runs[s] {
					t.Errorf("container %s reaches %s at %s, but %s runs it", container, s, addr, runs[s])
				}
			}
		}
	}

	// Health checks: the image has no shell, so the test is the binary's own subcommand, run directly, given more
	// time by Docker than the subcommand's own timeout (3s) so that a slow answer reads as unhealthy, not killed.
	binary := dockerfileBinary(t)
	for container, c := range compose.Services {
		if len(c.Command) == 0 || c.Command[0] != "serve" {
			continue
		}
		hc := c.Healthcheck
		if hc == nil {
			t.Errorf("container %s has no health check", container)
			continue
		}
		if want := []string{"CMD", binary, "healthcheck"}; !slices.Equal(hc.Test, want) {
			t.Errorf("container %s checks its health with %q, want %q", container, hc.Test, want)
		}
		if d, err := time.ParseDuration(hc.Timeout); err != nil || d <= 3*time.Second {
			t.Errorf("container %s: health check timeout %q, want more than the subcommand's 3s", container, hc.Timeout)
		}
		cfg, _ := config.Parse(c.Command[1:], func(k string) string { return c.Environment[k] })
		opensDatabase := slices.ContainsFunc(cfg.Services, func(s string) bool { return s != svc.Gateway })
		if dep, ok := c.DependsOn["postgres"]; opensDatabase && (!ok || dep.Condition != "service_healthy") {
			t.Errorf("container %s opens the database but does not wait for postgres to be healthy", container)
		}
		if cfg.Runs(svc.Gateway) {
			for s, other := range runs {
				if s == svc.Gateway {
					continue
				}
				if dep, ok := c.DependsOn[other]; !ok || dep.Condition != "service_healthy" {
					t.Errorf("the gateway in %s opens before %s (service %s) is healthy", container, other, s)
				}
			}
		}
	}
	for container, c := range compose.Services {
		for dep, d := range c.DependsOn {
			target, ok := compose.Services[dep]
			if !ok {
				t.Errorf("container %s depends on %s, which the file does not define", container, dep)
			} else if d.Condition == "service_healthy" && target.Healthcheck == nil {
				t.Errorf("container %s waits for %s to be healthy, but %s has no health check", container, dep, dep)
			}
		}
	}
	// Compose refuses a cycle of dependencies.
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string, []string)
	visit = func(name string, path []string) {
		switch state[name] {
		case 1:
			t.Errorf("dependency cycle: %s", strings.Join(append(path, name), " -> "))
			return
		case 2:
			return
		}
		state[name] = 1
		for dep := range compose.Services[name].DependsOn {
			visit(dep, append(path, name))
		}
		state[name] = 2
	}
	for name := range compose.Services {
		visit(name, nil)
	}
}

// serviceHosts are the hosts an AUTHPLANE_<NAME>_ADDR value names: those of a list, or the name of a dns:/// target.
func serviceHosts(value string) ([]string, error) {
	addr, err := config.ParseServiceAddr(value)
	if err != nil {
		return nil, err
	}
	list := addr.Addrs
	if addr.Target != "" {
		target := addr.Target
		if i := strings.LastIndex(target, "/"); i >= 0 {
			target = target[i+1:]
		}
		list = []string{target}
	}
	hosts := make([]string, len(list))
	for i, a := range list {
		if hosts[i], _, err = net.SplitHostPort(a); err != nil {
			return nil, err
		}
	}
	return hosts, nil
}

// TestComposeFileRunsReplicasBehindAProxy reads docker-compose.yml and deploy/compose/haproxy.cfg: the token and
// pool services and the gateway run two replicas or more, every address is a dns:/// name (Docker's DNS answers it
// with every replica, so any service can be scaled), no replicated container publishes a port (two could not bind
// it), the proxy publishes the public one and balances over the gateways by their /readyz, and a stopping
// container is given the time to drain and finish its requests.
func TestComposeFileRunsReplicasBehindAProxy(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			StopGrace   string            `yaml:"stop_grace_period"`
			Deploy      struct {
				Replicas int `yaml:"replicas"`
			} `yaml:"deploy"`
			Configs []struct {
				Source string `yaml:"source"`
				Target string `yaml:"target"`
			} `yaml:"configs"`
		} `yaml:"services"`
		Configs map[string]struct {
			File string `yaml:"file"`
		} `yaml:"configs"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{svc.Token, svc.Pool, svc.Gateway} {
		if n := compose.Services[name].Deploy.Replicas; n < 2 {
			t.Errorf("the %s container runs %d replicas, want 2 or more", name, n)
		}
	}
	for container, c := range compose.Services {
		if len(c.Command) == 0 || c.Command[0] != "serve" {
			continue
		}
		cfg, err := config.Parse(c.Command[1:], func(k string) string { return c.Environment[k] })
		if err != nil {
			t.Fatalf("container %s: %v", container, err)
		}
		for s, addr := range cfg.Addrs {
			if !strings.HasPrefix(addr, "dns:///") {
				t.Errorf("container %s reaches %s at %q, want a dns:/// name resolving to every replica", container, s, addr)
			}
		}
		if c.Deploy.Replicas > 1 && len(c.Ports) > 0 {
			t.Errorf("container %s runs %d replicas and publishes %v: only one could bind it", container, c.Deploy.Replicas, c.Ports)
		}
		grace, err := time.ParseDuration(c.StopGrace)
		if cfg.ShutdownDrain == 0 || err != nil || grace < cfg.ShutdownDrain+20*time.Second {
			t.Errorf("container %s: drain %v, stop_grace_period %q: want a drain, and a grace period covering it plus 20 s of in-flight requests",
				container, cfg.ShutdownDrain, c.StopGrace)
		}
	}

	lb, ok := compose.Services["lb"]
	if !ok || !strings.HasPrefix(lb.Image, "haproxy:") {
		t.Fatalf("no HAProxy container lb in front of the gateways (%+v)", lb)
	}
	if !slices.Contains(lb.Ports, "8080:8080") {
		t.Errorf("the proxy publishes %v, want 8080:8080", lb.Ports)
	}
	if len(lb.Configs) != 1 || lb.Configs[0].Target != "/usr/local/etc/haproxy/haproxy.cfg" {
		t.Fatalf("the proxy's configuration is not mounted where HAProxy reads it: %+v", lb.Configs)
	}
	cfgFile := compose.Configs[lb.Configs[0].Source].File
	haproxy, err := os.ReadFile(filepath.Join("../..", cfgFile))
	if err != nil {
		t.Fatalf("the proxy's configuration %q: %v", cfgFile, err)
	}
	directives := map[string][]string{} // first word → the rest of each line
	for _, line := range strings.Split(string(haproxy), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			directives[f[0]] = append(directives[f[0]], strings.Join(f[1:], " "))
		}
	}
	for _, want := range []struct{ directive, value string }{
		{"bind", ":8080"},
		{"balance", "roundrobin"},
		{"option", "httpchk GET /readyz"},
		{"retry-on", "conn-failure"},
		{"server-template", "gateway 4 gateway:8080"},
	} {
		if !slices.Contains(directives[want.directive], want.value) {
			t.Errorf("haproxy.cfg lacks %q %q (has %q)", want.directive, want.value, directives[want.directive])
		}
	}
}

// dockerfileBinary is where the Dockerfile puts the binary in the image (the last argument of its final COPY).
func dockerfileBinary(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	binary := ""
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "COPY" && strings.HasPrefix(f[1], "--from=") {
			binary = f[len(f)-1]
		}
	}
	if binary == "" {
		t.Fatal("the Dockerfile copies no binary from its build stage")
	}
	return binary
}

// composeServices is what TestComposeTLSOverride reads of a compose file.
type composeServices struct {
	Services map[string]struct {
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
}

func readCompose(t *testing.T, path string) composeServices {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeServices
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// composeDefault is the value Compose gives ${NAME:-default} when NAME is not set; other values are kept.
func composeDefault(v string) string {
	if inner, ok := strings.CutPrefix(v, "${"); ok && strings.HasSuffix(inner, "}") {
		if _, def, ok := strings.Cut(strings.TrimSuffix(inner, "}"), ":-"); ok {
			return def
		}
	}
	return v
}

// TestComposeTLSOverride reads docker-compose.tls.yml over docker-compose.yml, merged as Compose merges an
// override file (environment by name, volumes added), and checks that every authplane container then serves TLS
// and verifies the others with the CA file, all three files in a directory it mounts read-only (so that renewed
// files, renamed into place, are seen), and that the issuer is https. The health check is the binary's own, which
// reads the same environment and so asks https.
func TestComposeTLSOverride(t *testing.T) {
	base, override := readCompose(t, "../../docker-compose.yml"), readCompose(t, "../../docker-compose.tls.yml")
	for container := range override.Services {
		if _, ok := base.Services[container]; !ok {
			t.Errorf("docker-compose.tls.yml configures %s, which docker-compose.yml does not run", container)
		}
	}
	for container, c := range base.Services {
		if len(c.Command) == 0 || c.Command[0] != "serve" {
			continue
		}
		o, ok := override.Services[container]
		if !ok {
			t.Errorf("container %s is left in plaintext by docker-compose.tls.yml", container)
			continue
		}
		env := map[string]string{}
		for k, v := range c.Environment {
			env[k] = composeDefault(v)
		}
		for k, v := range o.Environment {
			env[k] = composeDefault(v)
		}
		cfg, err := config.Parse(c.Command[1:], func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("container %s with TLS: %v", container, err)
		}
		if !cfg.ServesTLS() || cfg.TLSCAFile == "" {
			t.Errorf("container %s: serves TLS %v, CA file %q", container, cfg.ServesTLS(), cfg.TLSCAFile)
		}
		if !strings.HasPrefix(cfg.IssuerURL, "https://") {
			t.Errorf("container %s: issuer %s over TLS", container, cfg.IssuerURL)
		}
		mounts := map[string]string{} // directory in the container -> its options
		for _, v := range append(slices.Clone(c.Volumes), o.Volumes...) {
			parts := strings.Split(v, ":")
			if len(parts) == 3 {
				mounts[parts[1]] = parts[2]
			}
		}
		for _, file := range []string{cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile} {
			dir := file[:strings.LastIndex(file, "/")]
			if mounts[dir] != "ro" {
				t.Errorf("container %s reads %s, not from a directory it mounts read-only (%v)", container, file, mounts)
			}
		}
	}
}
