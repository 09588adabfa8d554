// gitops-health evaluates Release objects with the code GitOps tools run:
// kstatus as published (sigs.k8s.io/cli-utils, used by Helm 4 and kubectl
// tooling), Flux's fork of it (github.com/fluxcd/cli-utils, linked by
// kustomize-controller and helm-controller), and Argo CD's Lua VM
// (github.com/argoproj/argo-cd/v3/util/lua) loaded with the health check of
// an argocd-cm ConfigMap file, as Argo CD's application controller runs it:
// no string, io or full os library.
//
// It reads one JSON object per line on stdin and writes one JSON line per
// object: {"kstatus":{...},"flux":{...},"argocd":{...}}, each {status, message}
// or {error}.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argolua "github.com/argoproj/argo-cd/v3/util/lua"
	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

type result struct {
	Kstatus verdict `json:"kstatus"`
	Flux    verdict `json:"flux"`
	ArgoCD  verdict `json:"argocd"`
}

// Argo CD's settings turn the argocd-cm key resource.customizations.health.<group>_<Kind>
// into the override key <group>/<Kind>; useOpenLibs is a key of its own.
const healthPrefix = "resource.customizations.health."
const openLibsPrefix = "resource.customizations.useOpenLibs."

func overrides(path string) (argolua.ResourceHealthOverrides, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Strict: a field a ConfigMap does not have is a mistake in the file.
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" {
		return nil, fmt.Errorf("%s: not the argocd-cm ConfigMap (apiVersion %q, kind %q, name %q)", path, cm.APIVersion, cm.Kind, cm.Name)
	}
	out := argolua.ResourceHealthOverrides{}
	for k, v := range cm.Data {
		if gk, ok := strings.CutPrefix(k, healthPrefix); ok {
			key := strings.Replace(gk, "_", "/", 1)
			o := out[key]
			o.HealthLua = v
			out[key] = o
		}
	}
	for k, v := range cm.Data {
		if gk, ok := strings.CutPrefix(k, openLibsPrefix); ok {
			key := strings.Replace(gk, "_", "/", 1)
			o := out[key]
			o.UseOpenLibs = v == "true"
			out[key] = o
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no %s* key", path, healthPrefix)
	}
	return out, nil
}

func main() {
	cmPath := flag.String("argocd-cm", "", "the argocd-cm ConfigMap file holding the health check")
	flag.Parse()
	ov, err := overrides(*cmPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gitops-health:", err)
		os.Exit(2)
	}
	// Keep the type in use so a version bump that renames it fails to build.
	var _ appv1.ResourceOverride = ov["signalman.dev/Release"]

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON([]byte(line)); err != nil {
			fmt.Fprintln(os.Stderr, "gitops-health: input:", err)
			os.Exit(2)
		}
		var r result
		if s, err := status.Compute(obj.DeepCopy()); err != nil {
			r.Kstatus.Error = err.Error()
		} else {
			r.Kstatus = verdict{Status: s.Status.String(), Message: s.Message}
		}
		if s, err := fluxstatus.Compute(obj.DeepCopy()); err != nil {
			r.Flux.Error = err.Error()
		} else {
			r.Flux = verdict{Status: s.Status.String(), Message: s.Message}
		}
		if h, err := ov.GetResourceHealth(obj.DeepCopy()); err != nil {
			r.ArgoCD.Error = err.Error()
		} else if h == nil {
			r.ArgoCD.Error = "no health check for " + obj.GroupVersionKind().GroupKind().String()
		} else {
			r.ArgoCD = verdict{Status: string(h.Status), Message: h.Message}
		}
		if err := out.Encode(r); err != nil {
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "gitops-health:", err)
		os.Exit(2)
	}
}
