// Command openapi2jsonschema writes the JSON schemas kubeconform validates manifests with, one per kind, from the
// OpenAPI (swagger 2.0) document of a Kubernetes release, the api/openapi-spec/swagger.json of the
// k8s.io/kubernetes module. It makes the "standalone-strict" flavour kubeconform's default registry serves:
//   - each file holds the kind's schema and every definition it reaches (as "#/definitions/…"), so no file
//     refers to another, and nothing is fetched;
//   - an object that lists its properties admits no other (a misspelt field is an error, as with kubectl);
//   - an int-or-string field takes a string or an integer, a quantity a string or a number (as the API server
//     does).
//
// Files are named as kubeconform's template {{ .ResourceKind }}{{ .KindSuffix }}.json looks them up:
// deployment-apps-v1.json, configmap-v1.json, poddisruptionbudget-policy-v1.json.
//
// Usage: openapi2jsonschema SWAGGER_JSON OUTPUT_DIR
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: openapi2jsonschema SWAGGER_JSON OUTPUT_DIR")
		os.Exit(2)
	}
	n, err := convert(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi2jsonschema:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %d schemas to %s\n", n, os.Args[2])
}

const definitionsRef = "#/definitions/"

// Definitions the API server reads more loosely than their OpenAPI type says.
var looser = map[string]any{
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}},
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}},
}

func convert(swaggerPath, outDir string) (int, error) {
	raw, err := os.ReadFile(swaggerPath)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Swagger     string         `json:"swagger"`
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return 0, fmt.Errorf("%s: %w", swaggerPath, err)
	}
	if doc.Swagger != "2.0" || len(doc.Definitions) == 0 {
		return 0, fmt.Errorf("%s is not a swagger 2.0 document with definitions", swaggerPath)
	}
	defs := map[string]any{}
	for name, d := range doc.Definitions {
		if l, ok := looser[name]; ok {
			d = l
		}
		defs[name] = strict(d)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, err
	}
	written := 0
	for _, name := range slices.Sorted(maps.Keys(doc.Definitions)) {
		def, _ := doc.Definitions[name].(map[string]any)
		for _, gvk := range groupVersionKinds(def) {
			schema := maps.Clone(defs[name].(map[string]any))
			props := maps.Clone(schema["properties"].(map[string]any))
			props["apiVersion"] = map[string]any{"type": "string", "enum": []any{gvk.apiVersion()}}
			props["kind"] = map[string]any{"type": "string", "enum": []any{gvk.Kind}}
			schema["properties"] = props
			reached := map[string]any{}
			if err := reach(schema, defs, reached); err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			schema["definitions"] = reached
			out, err := json.Marshal(schema)
			if err != nil {
				return 0, err
			}
			if err := os.WriteFile(filepath.Join(outDir, gvk.fileName()), out, 0o644); err != nil {
				return 0, err
			}
			written++
		}
	}
	if written == 0 {
		return 0, errors.New("no definition names a group, version and kind (x-kubernetes-group-version-kind)")
	}
	return written, nil
}

type groupVersionKind struct{ Group, Version, Kind string }

func (g groupVersionKind) apiVersion() string {
	if g.Group == "" {
		return g.Version
	}
	return g.Group + "/" + g.Version
}

// fileName follows kubeconform's KindSuffix: the first label of the group (none for the core group), then the
// version.
func (g groupVersionKind) fileName() string {
	suffix := "-" + strings.ToLower(g.Version)
	if g.Group != "" {
		first, _, _ := strings.Cut(g.Group, ".")
		suffix = "-" + strings.ToLower(first) + suffix
	}
	return strings.ToLower(g.Kind) + suffix + ".json"
}

// groupVersionKinds are the kinds a definition is the schema of; DeleteOptions, WatchEvent and the like name one
// per API group and are skipped, being no kind anyone writes a manifest of.
func groupVersionKinds(def map[string]any) []groupVersionKind {
	list, _ := def["x-kubernetes-group-version-kind"].([]any)
	if len(list) != 1 {
		return nil
	}
	m, _ := list[0].(map[string]any)
	g := groupVersionKind{}
	g.Group, _ = m["group"].(string)
	g.Version, _ = m["version"].(string)
	g.Kind, _ = m["kind"].(string)
	if g.Version == "" || g.Kind == "" {
		return nil
	}
	if _, hasProps := def["properties"].(map[string]any); !hasProps {
		return nil
	}
	return []groupVersionKind{g}
}

// strict copies a schema, adding additionalProperties: false to every object that lists properties and says
// nothing of others.
func strict(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v)+1)
		for k, e := range v {
			out[k] = strict(e)
		}
		if _, ok := v["properties"]; ok {
			if _, set := v["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = strict(e)
		}
		return out
	default:
		return v
	}
}

// reach adds to reached every definition v refers to, directly or through others.
func reach(v any, defs, reached map[string]any) error {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			name, ok := strings.CutPrefix(ref, definitionsRef)
			if !ok {
				return fmt.Errorf("a reference outside the definitions: %s", ref)
			}
			if _, done := reached[name]; !done {
				d, ok := defs[name]
				if !ok {
					return fmt.Errorf("a reference to a missing definition: %s", ref)
				}
				reached[name] = d
				if err := reach(d, defs, reached); err != nil {
					return err
				}
			}
		}
		for k, e := range v {
			if k == "definitions" {
				continue
			}
			if err := reach(e, defs, reached); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := reach(e, defs, reached); err != nil {
				return err
			}
		}
	}
	return nil
}
