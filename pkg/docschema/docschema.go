// Package docschema compiles the JSON Schema documents of identity pools (draft 2020-12 by default, with
// github.com/santhosh-tekuri/jsonschema) and turns validation failures into errors that name the failing field.
// References are resolved only inside the document and to the standard metaschemas: nothing is fetched from
// files or the network.
package docschema

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is a compiled document.
type Schema struct{ s *jsonschema.Schema }

// Violation says which field of a validated value fails and why.
type Violation struct {
	// Field is the dotted path of the failing value, such as `given_name` or `address.city`; empty for the root.
	Field   string
	Message string
}

func (v *Violation) Error() string {
	if v.Field == "" {
		return v.Message
	}
	return v.Field + ": " + v.Message
}

const docURL = "mem://authplane/schema.json"

var printer = message.NewPrinter(language.English)

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("references outside the document are not resolved (%s)", url)
}

// Compile compiles a document given as decoded JSON (maps, slices, float64 or json.Number, strings, bools).
// A document that is not a valid schema is reported as a Violation naming where in the document it fails.
func Compile(doc map[string]any) (*Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource(docURL, doc); err != nil {
		return nil, &Violation{Message: "the schema cannot be read: " + err.Error()}
	}
	s, err := c.Compile(docURL)
	if err != nil {
		var sve *jsonschema.SchemaValidationError
		if errors.As(err, &sve) {
			var ve *jsonschema.ValidationError
			if errors.As(sve.Err, &ve) {
				v := describe(ve)
				v.Message = "not a valid JSON Schema: " + v.Message
				return nil, v
			}
		}
		return nil, &Violation{Message: "not a valid JSON Schema: " + oneLine(err.Error())}
	}
	return &Schema{s: s}, nil
}

// Validate checks a decoded JSON value. It returns nil or a *Violation.
func (s *Schema) Validate(v any) error {
	err := s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return describe(ve)
	}
	return &Violation{Message: oneLine(err.Error())}
}

// describe picks the most specific failure: the deepest leaf, preferring a missing required property (which
// names a field the caller must add) among leaves of equal depth.
func describe(ve *jsonschema.ValidationError) *Violation {
	leaf := deepest(ve)
	loc := slices.Clone(leaf.InstanceLocation)
	msg := leaf.ErrorKind.LocalizedString(printer)
	if req, ok := leaf.ErrorKind.(*kind.Required); ok && len(req.Missing) > 0 {
		loc = append(loc, req.Missing[0])
		msg = "is required"
		if len(req.Missing) > 1 {
			msg = fmt.Sprintf("is required (and %s)", strings.Join(req.Missing[1:], ", "))
		}
	}
	return &Violation{Field: strings.Join(loc, "."), Message: oneLine(msg)}
}

func deepest(ve *jsonschema.ValidationError) *jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return ve
	}
	var best *jsonschema.ValidationError
	for _, c := range ve.Causes {
		d := deepest(c)
		if best == nil || len(d.InstanceLocation) > len(best.InstanceLocation) ||
			(len(d.InstanceLocation) == len(best.InstanceLocation) && isRequired(d) && !isRequired(best)) {
			best = d
		}
	}
	return best
}

func isRequired(ve *jsonschema.ValidationError) bool {
	_, ok := ve.ErrorKind.(*kind.Required)
	return ok
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
