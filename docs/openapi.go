// Package docs holds what the hub serves of its documentation: the OpenAPI
// document of the operator API (openapi.json, written by hand beside
// api.md; handlers/openapi_test.go holds it to the router both ways and
// checks real answers against it).
package docs

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of /api/v1, served at
// GET /api/v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte
