module github.com/plugintoken/plugintoken/internal/specprep

go 1.26.8

require (
	github.com/speakeasy-api/openapi v1.24.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/dprotaso/go-yit v0.0.0-20191028211022-135eb7262960 // indirect
	github.com/speakeasy-api/jsonpath v0.6.3 // indirect
	github.com/vmware-labs/yaml-jsonpath v0.3.2 // indirect
)
