// Package http provides the http_call tool: one request to a configured
// HTTP API, with warden's credentials, that can never leave the API's base
// URL.
package http
