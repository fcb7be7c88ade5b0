// Command kubelet is the unmodified upstream kubelet, built from the
// k8s.io/kubernetes module for flock-lab's real node stack (--runtime=real).
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
