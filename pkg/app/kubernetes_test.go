package app_test

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/authplane/authplane/pkg/config"
	"github.com/authplane/authplane/pkg/svc"
)

// k8sObject is what the test reads of a manifest (deploy/kubernetes/validate.sh checks them against the Kubernetes
// schemas; this test checks that they fit authplane).
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas  int              `yaml:"replicas"`
		ClusterIP string           `yaml:"clusterIP"`
		Selector  k8sSelector      `yaml:"selector"`
		Ports     []k8sServicePort `yaml:"ports"`
		Template  struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
		MaxUnavailable int `yaml:"maxUnavailable"`
	} `yaml:"spec"`
}

// k8sSelector is a Service's selector (labels) or a Deployment's and a PodDisruptionBudget's (matchLabels).
type k8sSelector struct {
	Labels      map[string]string
	MatchLabels map[string]string
}

func (s *k8sSelector) UnmarshalYAML(n *yaml.Node) error {
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return err
	}
	if _, ok := m["matchLabels"]; ok {
		var v struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		err := n.Decode(&v)
		s.MatchLabels = v.MatchLabels
		return err
	}
	return n.Decode(&s.Labels)
}

type k8sServicePort struct {
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type k8sPodSpec struct {
	TerminationGracePeriodSeconds int   `yaml:"terminationGracePeriodSeconds"`
	EnableServiceLinks            *bool `yaml:"enableServiceLinks"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []struct {
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		EnvFrom []struct {
			ConfigMapRef struct {
				Name string `yaml:"name"`
			} `yaml:"configMapRef"`
		} `yaml:"envFrom"`
		Env []struct {
			Name      string `yaml:"name"`
			ValueFrom struct {
				SecretKeyRef struct {
					Name string `yaml:"name"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
		} `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

// TestKubernetesManifestsDeployReplicas reads deploy/kubernetes as `kubectl apply -k` would: every service runs in a
// Deployment of two replicas or more, which the configuration it reads lets start; every address in the ConfigMap
// is a dns:/// name of a headless Service selecting exactly the pods of the service's Deployment, on its gRPC port;
// the gateways are behind a Service of their own; each Deployment has readiness (/readyz) and liveness (/healthz)
// probes, resource requests, a non-root restricted security context, the master key from a Secret file, a grace
// period covering its drain, and a PodDisruptionBudget.
func TestKubernetesManifestsDeployReplicas(t *testing.T) {
	const dir = "../../deploy/kubernetes"
	var kustomization struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, filepath.Join(dir, "kustomization.yaml"), &kustomization)
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var onDisk []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			onDisk = append(onDisk, filepath.Base(f))
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(kustomization.Resources)), onDisk) {
		t.Errorf("kustomization.yaml lists %v; the folder holds %v", kustomization.Resources, onDisk)
	}

	byKind := map[string][]k8sObject{}
	for _, f := range onDisk {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	if len(byKind["ConfigMap"]) != 1 {
		t.Fatalf("%d ConfigMaps, want the one every process reads", len(byKind["ConfigMap"]))
	}
	settings := byKind["ConfigMap"][0]

	runs := map[string]k8sObject{} // service → its Deployment
	for _, d := range byKind["Deployment"] {
		name := d.Metadata.Name
		pod := d.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("%s: %d containers, want one", name, len(pod.Containers))
		}
		c := pod.Containers[0]
		env := map[string]string{}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef.Name != settings.Metadata.Name {
				t.Errorf("%s reads the ConfigMap %q, not %q", name, from.ConfigMapRef.Name, settings.Metadata.Name)
			}
			maps.Copy(env, settings.Data)
		}
		for _, e := range c.Env {
			if e.ValueFrom.SecretKeyRef.Name == "" {
				t.Errorf("%s sets %s in the manifest, not from the Secret", name, e.Name)
			}
			env[e.Name] = "from-the-secret"
		}
		if len(c.Args) == 0 || c.Args[0] != "serve" {
			t.Fatalf("%s runs %v, want serve", name, c.Args)
		}
		cfg, err := config.Parse(c.Args[1:], func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: the configuration does not start: %v", name, err)
		}
		for _, s := range cfg.Services {
			if other, dup := runs[s]; dup {
				t.Errorf("service %s runs in %s and %s", s, other.Metadata.Name, name)
			}
			runs[s] = d
		}
		if d.Spec.Replicas < 2 {
			t.Errorf("%s runs %d replica(s), want 2 or more", name, d.Spec.Replicas)
		}
		if !maps.Equal(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
			t.Errorf("%s selects %v, its pods are labelled %v", name, d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
		}
		ports := map[string]int{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if _, httpPort, _ := net.SplitHostPort(cfg.HTTPAddr); httpPort != "8080" || ports["http"] != 8080 {
			t.Errorf("%s: HTTP on %q, container port http %d", name, cfg.HTTPAddr, ports["http"])
		}
		for probe, want := range map[*k8sProbe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
			if probe == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port != "http" {
				t.Errorf("%s: probe %+v, want GET %s on port http", name, probe, want)
			}
		}
		if p := c.ReadinessProbe; p != nil && time.Duration(p.PeriodSeconds*p.FailureThreshold)*time.Second >= cfg.ShutdownDrain {
			t.Errorf("%s: readiness fails after %d×%d s, not within the %v drain", name, p.PeriodSeconds, p.FailureThreshold, cfg.ShutdownDrain)
		}
		if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; cfg.ShutdownDrain == 0 || grace < cfg.ShutdownDrain+20*time.Second {
			t.Errorf("%s: drain %v, grace period %v: want a drain, and a grace period covering it and 20 s of requests", name, cfg.ShutdownDrain, grace)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
			t.Errorf("%s requests %v, want cpu and memory", name, c.Resources.Requests)
		}
		if !pod.SecurityContext.RunAsNonRoot || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation ||
			!c.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("%s: security context %+v / %+v, want non-root, no privilege escalation, a read-only root", name, pod.SecurityContext, c.SecurityContext)
		}
		if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
			t.Errorf("%s keeps service links: Kubernetes would add AUTHPLANE_…_PORT variables to its environment", name)
		}
		keyFromSecret := false
		for _, m := range c.VolumeMounts {
			for _, v := range pod.Volumes {
				if v.Name == m.Name && v.Secret != nil && strings.HasPrefix(cfg.MasterKeyFile, m.MountPath+"/") {
					keyFromSecret = true
				}
			}
		}
		if !keyFromSecret {
			t.Errorf("%s reads the master key from %q, which is not in a Secret it mounts", name, cfg.MasterKeyFile)
		}
		hasBudget := false
		for _, b := range byKind["PodDisruptionBudget"] {
			hasBudget = hasBudget || (maps.Equal(b.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) && b.Spec.MaxUnavailable == 1)
		}
		if !hasBudget {
			t.Errorf("%s has no PodDisruptionBudget of one unavailable replica at a time", name)
		}
	}
	for _, s := range svc.All {
		if _, ok := runs[s]; !ok {
			t.Errorf("no Deployment runs the %s service", s)
		}
	}

	services := map[string]k8sObject{}
	for _, s := range byKind["Service"] {
		services[s.Metadata.Name] = s
	}
	for _, s := range svc.All {
		if s == svc.Gateway {
			continue
		}
		key := "AUTHPLANE_" + strings.ToUpper(s) + "_ADDR"
		target, ok := strings.CutPrefix(settings.Data[key], "dns:///")
		host, port, err := net.SplitHostPort(target)
		if !ok || err != nil || port != "9090" {
			t.Errorf("%s = %q, want dns:///SERVICE:9090", key, settings.Data[key])
			continue
		}
		headless, ok := services[host]
		switch {
		case !ok:
			t.Errorf("%s names the Service %s, which the manifests do not define", key, host)
		case headless.Spec.ClusterIP != "None":
			t.Errorf("the Service %s is not headless: its name would resolve to one virtual address, not every replica", host)
		case !maps.Equal(headless.Spec.Selector.Labels, runs[s].Spec.Template.Metadata.Labels):
			t.Errorf("the Service %s selects %v, the %s pods are %v", host, headless.Spec.Selector.Labels, s, runs[s].Spec.Template.Metadata.Labels)
		case len(headless.Spec.Ports) != 1 || headless.Spec.Ports[0].Port != 9090 || headless.Spec.Ports[0].TargetPort != "grpc":
			t.Errorf("the Service %s has ports %+v, want 9090 to the container's grpc", host, headless.Spec.Ports)
		}
	}
	fronted := false
	for _, s := range services {
		fronted = fronted || (s.Spec.ClusterIP != "None" && maps.Equal(s.Spec.Selector.Labels, runs[svc.Gateway].Spec.Template.Metadata.Labels))
	}
	if !fronted {
		t.Error("no Service fronts the gateways")
	}
}

func readYAML(t *testing.T, path string, out any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
