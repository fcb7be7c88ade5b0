package kubelet

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// defaultPath is the PATH of a container process after BinDir, the one a
// Debian root shell has.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// podEnv is what a container's environment is built from besides its spec.
type podEnv struct {
	BinDir  string
	PodIPs  []string // primary first
	HostIPs []string
}

// containerEnv builds a container's environment as kubelet does: a base
// (PATH with BinDir first, HOME, HOSTNAME), the pod's identity for
// `flock-lab serve` (POD_NAMESPACE, POD_NAME, POD_IP, POD_IPS, NODE_NAME),
// then the spec's env in order, each value with $(VAR) references to
// earlier variables expanded. Sources kubelet-lite cannot resolve
// (secrets, config maps, envFrom) are left out and reported as warnings.
func containerEnv(pod *v1.Pod, c *v1.Container, pe podEnv) (env []string, warnings []string) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	path := defaultPath
	if pe.BinDir != "" {
		path = pe.BinDir + ":" + path
	}
	set("PATH", path)
	set("HOME", "/root")
	set("HOSTNAME", pod.Name)
	set("POD_NAMESPACE", pod.Namespace)
	set("POD_NAME", pod.Name)
	set("NODE_NAME", pod.Spec.NodeName)
	if len(pe.PodIPs) > 0 {
		set("POD_IP", pe.PodIPs[0])
	}
	set("POD_IPS", strings.Join(pe.PodIPs, ","))

	if len(c.EnvFrom) > 0 {
		warnings = append(warnings, fmt.Sprintf("container %s: envFrom is not supported by flock-lab's kubelet-lite", c.Name))
	}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expand(e.Value, lookup))
		case e.ValueFrom.FieldRef != nil:
			v, ok := fieldValue(pod, e.ValueFrom.FieldRef.FieldPath, pe)
			if !ok {
				warnings = append(warnings, fmt.Sprintf("container %s: env %s: field %q is not supported by flock-lab's kubelet-lite", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath))
				continue
			}
			set(e.Name, v)
		default:
			warnings = append(warnings, fmt.Sprintf("container %s: env %s: only values and fieldRef are supported by flock-lab's kubelet-lite", c.Name, e.Name))
		}
	}
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, warnings
}

// fieldValue resolves the downward API fields a lab pod may want.
func fieldValue(pod *v1.Pod, path string, pe podEnv) (string, bool) {
	switch path {
	case "metadata.name":
		return pod.Name, true
	case "metadata.namespace":
		return pod.Namespace, true
	case "metadata.uid":
		return string(pod.UID), true
	case "spec.nodeName":
		return pod.Spec.NodeName, true
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, true
	case "status.podIP":
		if len(pe.PodIPs) == 0 {
			return "", true
		}
		return pe.PodIPs[0], true
	case "status.podIPs":
		return strings.Join(pe.PodIPs, ","), true
	case "status.hostIP":
		if len(pe.HostIPs) == 0 {
			return "", true
		}
		return pe.HostIPs[0], true
	case "status.hostIPs":
		return strings.Join(pe.HostIPs, ","), true
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok {
			if key, ok := strings.CutSuffix(rest, "']"); ok {
				return m[key], true
			}
		}
	}
	return "", false
}

// expand replaces $(VAR) with VAR's value when it is defined and leaves the
// reference as written when not; $$ is a literal $. These are the rules of
// Kubernetes' command, args and env expansion.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// envLookup makes a lookup function over a KEY=VALUE environment.
func envLookup(env []string) func(string) (string, bool) {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// commandLine is a container's argv with $(VAR) references expanded from
// its environment; images are ignored, so command or args must be given.
func commandLine(c *v1.Container, env []string) ([]string, error) {
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 {
		return nil, fmt.Errorf("container %s has neither command nor args (flock-lab ignores images)", c.Name)
	}
	lookup := envLookup(env)
	for i := range argv {
		argv[i] = expand(argv[i], lookup)
	}
	return argv, nil
}
