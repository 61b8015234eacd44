module github.com/oidc-stepup/stepup/tools

go 1.26.0

require github.com/oidc-stepup/stepup v0.0.0-00010101000000-000000000000

replace (
	github.com/oidc-stepup/stepup => ..
	github.com/oidc-stepup/stepup/stepup => ../stepup
	github.com/oidc-stepup/stepup/stepup/stepuptest => ../stepup/stepuptest
)
