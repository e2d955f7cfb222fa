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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// version is stamped at build time (-ldflags -X main.version=...).
var version = "0.0.0-dev"

// exitAfterLoggedError is @pulumi/pulumi's exit code for "the error was already reported to
// the engine": the update fails without a second, generic message.
const exitAfterLoggedError = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string
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
	if s := option(info, "nodeargs"); s != "" {
		return strings.Fields(s)
	}
	return nil
}

func option(info *pulumirpc.ProgramInfo, name string) string {
	if info == nil || info.Options == nil {
		return ""
	}
	v, ok := info.Options.Fields[name]
	if !ok {
		return ""
	}
	switch k := v.Kind.(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	}
	return ""
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.EngineAddress != "" {
		h.engine = req.EngineAddress
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) InstallDependencies(*pulumirpc.InstallDependenciesRequest, grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]) error {
	return nil // npm install is the project's own step (npm ci)
}

func (h *host) GetProgramDependencies(context.Context, *pulumirpc.GetProgramDependenciesRequest) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
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
		"--monitor="+req.MonitorAddress, "--engine="+h.engine,
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

	config, err := json.Marshal(req.Config)
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(append([]string{}, req.ConfigSecretKeys...))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = req.Pwd
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr // the engine shows a host's output
	cmd.Env = append(os.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys),
		"PULUMI_NODEJS_TYPESCRIPT="+strconv.FormatBool(option(info, "typescript") != "false"))
	if ts := option(info, "tsconfig"); ts != "" {
		cmd.Env = append(cmd.Env, "PULUMI_NODEJS_TSCONFIG_PATH="+ts)
	}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if exit.ExitCode() == exitAfterLoggedError {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exit.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// streamWriter forwards a plugin's stdout or stderr to the engine as RunPlugin messages.
type streamWriter struct {
	mu     *sync.Mutex
	send   func(*pulumirpc.RunPluginResponse) error
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	b := append([]byte{}, p...)
	msg := &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}}
	if w.stderr {
		msg = &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
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
	mu := &sync.Mutex{}
	cmd.Stdout = streamWriter{mu: mu, send: server.Send}
	cmd.Stderr = streamWriter{mu: mu, send: server.Send, stderr: true}
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
	// The engine starts a host as `pulumi-language-nodejs [-flags...] <engine address>`.
	h := &host{}
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-") {
			h.engine = a
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(400 * 1024 * 1024))
	pulumirpc.RegisterLanguageRuntimeServer(srv, h)
	// The engine reads the port from the host's first line of output.
	fmt.Println(lis.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(lis); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
