// Command kube-apiserver is the unmodified upstream API server, built from the
// k8s.io/kubernetes module so that flock-lab runs against a real control plane.
// It lives in its own module (see go.mod) so its large dependency graph stays
// out of flock's.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
