// pulumi-language-nodejs: a small Node.js language host for the Pulumi engine.
//
// The published host (module github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)
// is not served by the Go module proxy this project can reach, so this is our own minimal one,
// built on the published sdk/v3 gRPC definitions. It does what the engine needs to run
// Node.js programs and source-based Node.js plugins:
//   - Run: starts `node [nodeargs] @pulumi/pulumi/cmd/run ... <program>` with the engine's
//     settings as flags and the stack config in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS,
//     which is the contract @pulumi/pulumi's own runner reads;
//   - RunPlugin: starts `node [nodeargs] @pulumi/pulumi/cmd/run-plugin <dir> <args>` and
//     streams its output (used for PulumiPlugin.yaml component plugins);
//   - GetRequiredPackages/Plugins: none (plugins are found on PATH, never downloaded).
// Dependency installation, templates, codegen and `pulumi about` details are not implemented.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"devmachines.local/tools/pulumi/langhost"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// version is stamped at build time (-ldflags -X main.version=...).
var version = "0.0.0-dev"

type host struct {
	langhost.Base // the engine's address, and the answers every language gives alike
}

// findPackageFile walks up from dir to the first node_modules/@pulumi/pulumi/<rel>, as Node's
// own resolution would, so the program runs with the @pulumi/pulumi it depends on.
func findPackageFile(dir, rel string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "node_modules", "@pulumi", "pulumi", rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("@pulumi/pulumi not found in node_modules above %s: run npm install", dir)
		}
	}
}

// nodeArgs reads the `nodeargs` runtime option of Pulumi.yaml / PulumiPlugin.yaml.
func nodeArgs(info *pulumirpc.ProgramInfo) []string {
	if s := langhost.Option(info, "nodeargs"); s != "" {
		return strings.Fields(s)
	}
	return nil
}


func (h *host) InstallDependencies(*pulumirpc.InstallDependenciesRequest, grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]) error {
	return nil // npm install is the project's own step (npm ci)
}

func (h *host) About(context.Context, *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	out, _ := exec.Command("node", "--version").Output()
	return &pulumirpc.AboutResponse{Executable: "node", Version: strings.TrimSpace(string(out))}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.Info
	dir := req.Pwd
	program := req.Program
	if info != nil && info.ProgramDirectory != "" {
		dir = info.ProgramDirectory
		program = filepath.Join(info.ProgramDirectory, info.EntryPoint)
	}
	runner, err := findPackageFile(dir, filepath.Join("cmd", "run"))
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	args := append(nodeArgs(info), runner,
		"--monitor="+req.MonitorAddress, "--engine="+h.Engine,
		"--project="+req.Project, "--stack="+req.Stack, "--pwd="+req.Pwd,
		"--parallel="+strconv.Itoa(int(req.Parallel)))
	if req.Organization != "" {
		args = append(args, "--organization="+req.Organization)
	}
	if info != nil && info.RootDirectory != "" {
		args = append(args, "--root-directory="+info.RootDirectory)
	}
	if req.DryRun {
		args = append(args, "--dry-run")
	}
	args = append(append(args, program), req.Args...)

	configEnv, err := langhost.ConfigEnv(req)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = req.Pwd
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr // the engine shows a host's output
	cmd.Env = append(append(os.Environ(), configEnv...),
		"PULUMI_NODEJS_TYPESCRIPT="+strconv.FormatBool(langhost.Option(info, "typescript") != "false"))
	if ts := langhost.Option(info, "tsconfig"); ts != "" {
		cmd.Env = append(cmd.Env, "PULUMI_NODEJS_TSCONFIG_PATH="+ts)
	}
	return langhost.RunResult(cmd.Run()), nil
}

func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server grpc.ServerStreamingServer[pulumirpc.RunPluginResponse]) error {
	dir := req.Pwd
	if req.Info != nil && req.Info.ProgramDirectory != "" {
		dir = req.Info.ProgramDirectory
	}
	runner, err := findPackageFile(dir, filepath.Join("cmd", "run-plugin"))
	if err != nil {
		return err
	}
	args := append(append(nodeArgs(req.Info), runner, dir), req.Args...)
	cmd := exec.CommandContext(server.Context(), "node", args...)
	cmd.Dir = req.Pwd
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Stdout, cmd.Stderr = langhost.Streams(func(stdout, stderr []byte) error {
		if stderr != nil {
			return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: stderr}})
		}
		return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: stdout}})
	})
	code := 0
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return err
		}
		code = exit.ExitCode()
	}
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}})
}

func main() {
	h := &host{Base: langhost.Base{Version: version}}
	langhost.Serve(&h.Base, h)
}
