package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLinksOnlyItsAPIGroups keeps client-go's generated clientset, its
// informers, its record package (strategic merge patches and the OpenAPI
// models) and every API group the agent does not read out of the binary:
// together they were a third of the agent's resident memory
// (pkg/kube/apiclient, docs/performance.md).
func TestLinksOnlyItsAPIGroups(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var groups []string
	for pkg := range strings.FieldsSeq(string(out)) {
		switch {
		case strings.HasPrefix(pkg, "k8s.io/api/"):
			groups = append(groups, pkg)
		case pkg == "k8s.io/client-go/kubernetes", strings.HasPrefix(pkg, "k8s.io/client-go/kubernetes/"),
			strings.HasPrefix(pkg, "k8s.io/client-go/informers"), strings.HasPrefix(pkg, "k8s.io/client-go/listers"),
			strings.HasPrefix(pkg, "k8s.io/client-go/applyconfigurations"), pkg == "k8s.io/client-go/discovery",
			pkg == "k8s.io/client-go/tools/record", pkg == "k8s.io/apimachinery/pkg/util/strategicpatch",
			strings.HasPrefix(pkg, "github.com/google/gnostic-models"):
			t.Errorf("flock-agent links %s", pkg)
		}
	}
	want := []string{"k8s.io/api/core/v1", "k8s.io/api/discovery/v1", "k8s.io/api/networking/v1"}
	if slices.Sort(groups); !slices.Equal(groups, want) {
		t.Errorf("flock-agent links the API groups %v, want only %v", groups, want)
	}
}
