package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// OpenAPIPath is where the daemon serves the OpenAPI 3.1 document of its
// API, behind the same token, Host and Origin checks as the methods.
const OpenAPIPath = "/api/openapi.json"

// MetricsPath is where the API serves the Prometheus metrics (behind the
// token; docs/operators.md).
const MetricsPath = "/metrics"

// OpenAPI returns the OpenAPI 3.1 document of the endpoint table: one POST
// operation per endpoint with its request and response schemas (made from
// the Go types and their json tags) and the error answers of every kind.
func OpenAPI() ([]byte, error) { return openAPIDoc() }

var openAPIDoc = sync.OnceValues(func() ([]byte, error) {
	b, err := json.MarshalIndent(buildOpenAPI(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode API document: %w", err)
	}
	return b, nil
})

type obj = map[string]any

func buildOpenAPI() obj {
	g := schemaGen{defs: obj{}, types: map[string]reflect.Type{}}
	errRefs := obj{}
	responses := obj{}
	for _, k := range Kinds {
		name := "error_" + string(k)
		responses[name] = obj{
			"description": fmt.Sprintf("An error of kind %q.", k),
			"content":     obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/Error"}}},
		}
		errRefs[fmt.Sprint(StatusOf(k))] = obj{"$ref": "#/components/responses/" + name}
	}
	g.defs["Error"] = obj{
		"type":     "object",
		"required": []string{"error", "kind"},
		"properties": obj{
			"error": obj{"type": "string", "description": "One line for people."},
			"kind":  obj{"$ref": "#/components/schemas/Kind"},
			"code":  obj{"$ref": "#/components/schemas/Code"},
		},
	}
	g.defs["StreamError"] = obj{
		"type":       "object",
		"required":   []string{"kind", "error"},
		"properties": obj{"kind": obj{"const": "error"}, "error": obj{"type": "string"}},
	}
	g.defs["Kind"] = obj{"type": "string", "enum": Kinds, "description": "The class of an error; it sets the status code."}
	g.defs["Code"] = obj{"type": "string", "enum": Codes, "description": "Names an error precisely enough for a client to act on it."}
	paths := obj{}
	for _, d := range Endpoints() {
		ok := obj{"description": "The answer."}
		if d.Stream {
			ok = obj{
				"description": "One JSON object per line until the client stops reading; an error after the stream opened is a line {\"kind\": \"error\", \"error\": ...}.",
				"content": obj{"application/x-ndjson": obj{"schema": obj{"anyOf": []any{
					g.schema(d.Resp), obj{"$ref": "#/components/schemas/StreamError"},
				}}}},
			}
		} else {
			ok["content"] = obj{"application/json": obj{"schema": g.schema(d.Resp)}}
		}
		rs := obj{"200": ok}
		for s, r := range errRefs {
			rs[s] = r
		}
		paths["/v1/"+d.Method] = obj{"post": obj{
			"operationId": d.Method,
			"summary":     d.Summary,
			"requestBody": obj{
				"required": false,
				"content":  obj{"application/json": obj{"schema": g.schema(d.Req)}},
			},
			"responses": rs,
		}}
	}
	docOK := obj{"description": "This document.", "content": obj{"application/json": obj{"schema": obj{"type": "object"}}}}
	docResp := obj{"200": docOK}
	for s, r := range errRefs {
		docResp[s] = r
	}
	paths[OpenAPIPath] = obj{"get": obj{"operationId": "openapi", "summary": "The OpenAPI document of this API.", "responses": docResp}}
	metricsResp := obj{"200": obj{"description": "The metrics in the Prometheus text format (docs/operators.md).", "content": obj{"text/plain": obj{"schema": obj{"type": "string"}}}}}
	for s, r := range errRefs {
		metricsResp[s] = r
	}
	paths[MetricsPath] = obj{"get": obj{"operationId": "metrics", "summary": "Prometheus metrics of this node.", "responses": metricsResp}}
	return obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":       "Parley local API",
			"version":     "1",
			"description": "The API of a Parley daemon, on a loopback address with a bearer token (the api file in the node's home). Every method is POST /v1/<method> with a JSON body; unknown fields are refused.",
		},
		"paths":    paths,
		"security": []any{obj{"token": []any{}}},
		"components": obj{
			"schemas":         g.defs,
			"responses":       responses,
			"securitySchemes": obj{"token": obj{"type": "http", "scheme": "bearer"}},
		},
	}
}

// schemaGen makes JSON Schemas (2020-12, as OpenAPI 3.1 uses) of Go types
// the way encoding/json encodes them; named structs become components.
type schemaGen struct {
	defs  obj
	types map[string]reflect.Type
}

func (g *schemaGen) schema(t reflect.Type) obj {
	switch t {
	case reflect.TypeFor[Kind]():
		return obj{"$ref": "#/components/schemas/Kind"}
	case reflect.TypeFor[Code]():
		return obj{"$ref": "#/components/schemas/Code"}
	case reflect.TypeFor[json.RawMessage]():
		return obj{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return obj{"anyOf": []any{g.schema(t.Elem()), obj{"type": "null"}}}
	case reflect.Bool:
		return obj{"type": "boolean"}
	case reflect.String:
		return obj{"type": "string"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return obj{"type": "integer", "format": "int" + fmt.Sprint(t.Bits())}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return obj{"type": "integer", "minimum": 0, "format": "uint" + fmt.Sprint(t.Bits())}
	case reflect.Float32, reflect.Float64:
		return obj{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return obj{"type": []string{"string", "null"}, "contentEncoding": "base64"}
		}
		return obj{"type": []string{"array", "null"}, "items": g.schema(t.Elem())}
	case reflect.Map:
		return obj{"type": []string{"object", "null"}, "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return obj{}
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.object(t)
		}
		if prev, ok := g.types[name]; ok {
			if prev != t {
				panic(fmt.Sprintf("api: two API types named %s", name))
			}
		} else {
			g.types[name] = t
			g.defs[name] = obj{} // placeholder for recursive types
			g.defs[name] = g.object(t)
		}
		return obj{"$ref": "#/components/schemas/" + name}
	}
	panic(fmt.Sprintf("api: no JSON Schema for API type %s", t))
}

// object is the schema of a struct: its json-tagged fields, embedded
// structs flattened; fields without omitempty are always present.
func (g *schemaGen) object(t reflect.Type) obj {
	props := obj{}
	required := []string{}
	var walk func(t reflect.Type, inEmbedded bool)
	walk = func(t reflect.Type, inEmbedded bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				et := f.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					walk(et, inEmbedded || f.Type.Kind() == reflect.Pointer)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			omit := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
			s := g.schema(f.Type)
			if omit {
				s = nonNull(s)
			} else if !inEmbedded {
				required = append(required, name)
			}
			props[name] = s
		}
	}
	walk(t, false)
	return obj{"type": "object", "properties": props, "required": required}
}

// nonNull drops null from a schema: an omitempty field is left out rather
// than sent as null.
func nonNull(s obj) obj {
	if ts, ok := s["type"].([]string); ok && len(ts) == 2 && ts[1] == "null" {
		c := obj{}
		for k, v := range s {
			c[k] = v
		}
		c["type"] = ts[0]
		return c
	}
	if as, ok := s["anyOf"].([]any); ok && len(as) == 2 {
		if n, ok := as[1].(obj); ok && n["type"] == "null" {
			return as[0].(obj)
		}
	}
	return s
}
