package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// A swagger document with the shapes of Kubernetes' own: a kind reaching definitions through others, a map, an
// int-or-string, a quantity, and a meta type that names a kind per group.
const swagger = `{
  "swagger": "2.0",
  "definitions": {
    "io.k8s.api.apps.v1.Widget": {
      "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Widget"}],
      "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.WidgetSpec"}
      }
    },
    "io.k8s.api.apps.v1.WidgetSpec": {
      "required": ["size"],
      "properties": {
        "size": {"type": "integer"},
        "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
        "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"}
      }
    },
    "io.k8s.api.core.v1.Gadget": {
      "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Gadget"}],
      "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
    },
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
      "properties": {"name": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}
    },
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions": {
      "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "DeleteOptions"}, {"group": "apps", "version": "v1", "kind": "DeleteOptions"}],
      "properties": {"dryRun": {"type": "array", "items": {"type": "string"}}}
    }
  }
}`

func TestSchemasAreStandaloneStrictAndNamedAsKubeconformLooksThemUp(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "swagger.json")
	if err := os.WriteFile(in, []byte(swagger), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "schemas")
	n, err := convert(in, out)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"gadget-v1.json", "widget-apps-v1.json"}; n != 2 || !slices.Equal(names, want) {
		t.Fatalf("wrote %d: %v, want %v (no file for a meta type naming a kind per group)", n, names, want)
	}

	raw, err := os.ReadFile(filepath.Join(out, "widget-apps-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(refuseLoader{t}) // standalone: nothing outside the file is needed
	if err := c.AddResource("widget-apps-v1.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("widget-apps-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		manifest string
		valid    bool
	}{
		{"a valid widget", `{"apiVersion": "apps/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}}, "spec": {"size": 2, "port": "http", "memory": "64Mi"}}`, true},
		{"a number where an int-or-string or a quantity is", `{"apiVersion": "apps/v1", "kind": "Widget", "spec": {"size": 2, "port": 8080, "memory": 1}}`, true},
		{"a misspelt field", `{"apiVersion": "apps/v1", "kind": "Widget", "spec": {"size": 2, "prot": 8080}}`, false},
		{"a misspelt field in a referenced definition", `{"apiVersion": "apps/v1", "kind": "Widget", "metadata": {"nmae": "w"}}`, false},
		{"a wrong type", `{"apiVersion": "apps/v1", "kind": "Widget", "spec": {"size": "two"}}`, false},
		{"a missing required field", `{"apiVersion": "apps/v1", "kind": "Widget", "spec": {}}`, false},
		{"a boolean port", `{"apiVersion": "apps/v1", "kind": "Widget", "spec": {"size": 1, "port": true}}`, false},
		{"another kind", `{"apiVersion": "apps/v1", "kind": "Gadget"}`, false},
		{"another API version", `{"apiVersion": "apps/v1beta1", "kind": "Widget"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tc.manifest), &v); err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(v); (err == nil) != tc.valid {
				t.Errorf("valid = %v, want %v (%v)", err == nil, tc.valid, err)
			}
		})
	}
}

func TestADocumentWithoutKindsIsRefused(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "swagger.json")
	if err := os.WriteFile(in, []byte(`{"swagger": "2.0", "definitions": {"a.B": {"type": "string"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := convert(in, filepath.Join(dir, "out")); err == nil {
		t.Error("converted a document that defines no kind")
	}
}

type refuseLoader struct{ t *testing.T }

func (l refuseLoader) Load(url string) (any, error) {
	l.t.Errorf("the schema refers outside its file: %s", url)
	return nil, os.ErrNotExist
}
