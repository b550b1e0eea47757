// Package gen holds only code generated from the upstream Teable document
// in ../openapi: internal/specprep cuts it to the paths the overlay selects,
// serves the token operation as GET and POST, and applies the overlay
// (openapi.yaml is its output, the document the server serves); oapi-codegen
// generates api.gen.go from that. Do not edit openapi.yaml or *.gen.go by
// hand: change the overlay (or the selection, or the upstream copy) and run
// `make generate`.
package gen

//go:generate go -C ../internal/specprep run . generate -root ../..
//go:generate go tool -modfile=../tools.mod oapi-codegen -config config.yaml openapi.yaml
