// Package api is the contract of a Parley daemon's local HTTP API
// (docs/api.md): the wire types of every method, the endpoint table that
// pairs each method with its request and answer types, the error kinds
// and codes, the typed client, and the OpenAPI 3.1 document made from the
// table. The daemon (package node) serves it; cmd/parley and other clients
// use only this package.
//
// It must not import libp2p, BadgerDB or any other package of the node:
// its types are plain JSON values, so a client builds without the
// peer-to-peer stack (deps_test.go enforces this).
package api
