package kubelet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "1"},
		{"x$(A)y$(B)z", "x1ytwoz"},
		{"$(EMPTY)", ""},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$1"},
		{"$$", "$"},
		{"$", "$"},
		{"a$", "a$"},
		{"$x", "$x"},
		{"$(A", "$(A"},
		{"$(A$(B)", "$(A$(B)"}, // the reference name is "A$(B", undefined
		{"$()", "$()"},
	} {
		if got := expand(tc.in, lookup); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "p1", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec:       v1.PodSpec{NodeName: "node-1"},
	}
	c := &v1.Container{
		Name: "c",
		Env: []v1.EnvVar{
			{Name: "GREETING", Value: "hello $(POD_NAME)"},
			{Name: "LATER", Value: "$(GREETING)!"},
			{Name: "MYIP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "SECRET", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{Key: "k"}}},
			{Name: "POD_NAME", Value: "override"},
		},
		Command: []string{"echo", "$(GREETING)", "$(NOPE)"},
	}
	env, warnings := containerEnv(pod, c, podEnv{BinDir: "/opt/lab/bin", PodIPs: []string{"2001:db8::5", "198.18.1.5"}, HostIPs: []string{"2001:db8:1ab:1::2"}})
	want := []string{
		"PATH=/opt/lab/bin:" + defaultPath,
		"HOME=/root",
		"HOSTNAME=p1",
		"POD_NAMESPACE=ns1",
		"POD_NAME=override",
		"NODE_NAME=node-1",
		"POD_IP=2001:db8::5",
		"POD_IPS=2001:db8::5,198.18.1.5",
		"GREETING=hello p1",
		"LATER=hello p1!",
		"MYIP=2001:db8::5",
		"APP=web",
	}
	if d := cmp.Diff(want, env); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}
	if len(warnings) != 1 {
		t.Errorf("warnings = %q, want one for the secret", warnings)
	}
	argv, err := commandLine(c, env)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"echo", "hello p1", "$(NOPE)"}, argv); d != "" {
		t.Errorf("argv (-want +got):\n%s", d)
	}
	if _, err := commandLine(&v1.Container{Name: "x"}, env); err == nil {
		t.Error("a container without command and args was accepted")
	}
}

func TestLookPathIn(t *testing.T) {
	dir := t.TempDir()
	if _, err := lookPathIn("sh", []string{"PATH=" + dir}); err == nil {
		t.Error("sh found in an empty directory")
	}
	if p, err := lookPathIn("sh", []string{"PATH=" + dir + ":/bin:/usr/bin"}); err != nil || p == "" {
		t.Errorf("lookPathIn(sh) = %q, %v", p, err)
	}
}
