package warden

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// describeJSONError turns a decoding error into a sentence an agent can act
// on, without echoing argument values.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Sprintf("expected a JSON object, got %s", typeErr.Value)
		}
		return fmt.Sprintf("argument %q must be %s, got %s", field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return "arguments are not valid JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown argument " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.EOF):
		return "arguments are empty"
	}
	return "arguments do not match the tool's input schema"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	default:
		return "a number"
	}
}
