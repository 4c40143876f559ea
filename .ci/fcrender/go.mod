// Renders the gateway templates for tests/test_gateway_routes.py when no krakend binary exists.
// sprig and its dependencies are pinned to the versions krakend-ce v2.13.8 builds with.
module registrar/fcrender

go 1.25.0

require github.com/Masterminds/sprig/v3 v3.2.3

require (
	github.com/Masterminds/goutils v1.1.1 // indirect
	github.com/Masterminds/semver/v3 v3.2.1 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/huandu/xstrings v1.4.0 // indirect
	github.com/imdario/mergo v0.3.16 // indirect
	github.com/mitchellh/copystructure v1.2.0 // indirect
	github.com/mitchellh/reflectwalk v1.0.2 // indirect
	github.com/shopspring/decimal v1.3.1 // indirect
	github.com/spf13/cast v1.6.0 // indirect
	golang.org/x/crypto v0.52.0 // indirect
)
