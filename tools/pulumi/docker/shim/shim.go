// Package shim exports the upstream Terraform Docker provider (SDKv2 part), which upstream
// keeps in an internal package, so the Pulumi bridge in ../main.go can wrap it.
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns the upstream SDKv2 provider (containers, volumes, networks, images),
// its container create wrapped to fail fast, with the container's last log lines, when the
// container cannot become healthy (wait.go).
func NewProvider(version string) *schema.Provider {
	p := provider.New(version)()
	if r := p.ResourcesMap["docker_container"]; r != nil && r.CreateContext != nil {
		r.CreateContext = wrapContainerCreate(r.CreateContext)
	}
	return p
}
