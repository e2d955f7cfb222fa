// pulumi-resource-docker: the Pulumi Docker provider (package "docker"), bridged from the
// upstream Terraform provider with the resource tokens @pulumi/docker uses
// (docker:index/container:Container, docker:index/volume:Volume, ...).
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/terraform-providers/terraform-provider-docker/shim"
)

// version is stamped at build time (-ldflags -X main.version=...).
var version = "0.0.0-dev"

func providerInfo() tfbridge.ProviderInfo {
	p := shimv2.NewProvider(shim.NewProvider(version))
	info := tfbridge.ProviderInfo{
		P:       p,
		Name:    "docker",
		Version: version,
		// Each docker_<thing> becomes docker:index/<thing>:<Thing>, as in @pulumi/docker.
	}
	info.MustComputeTokens(tokens.SingleModule("docker_", "index", tokens.MakeStandard("docker")))
	return info
}

func main() {
	// The engine needs no schema to run programs that use @pulumi/docker; GetSchema answers
	// with a minimal package description.
	tfbridge.Main("docker", version, providerInfo(), []byte(`{"name":"docker"}`))
}
