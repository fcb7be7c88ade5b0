// Package image builds the lab's container images without a registry: one
// layer holding a static flock-lab binary and Debian's static busybox (sh,
// nc, ping, test, ...), written as an OCI image layout tarball that
// `ctr images import` reads. The same layer serves the pod image (`lab`,
// also tagged `flock-lab`, what the lab's pod specs name) and the sandbox
// ("pause") image, whose entrypoint is `flock-lab pause`.
package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

// Names the images are imported under; kubelet normalises `image: lab` to
// the first, and containerd's sandbox_image is Pause.
const (
	Lab      = "docker.io/library/lab:latest"
	FlockLab = "docker.io/library/flock-lab:latest"
	Pause    = "docker.io/library/flock-lab-pause:latest"
)

// BusyboxApplets are the commands linked to busybox in the image: what lab
// pods and tests run in a container (`sh -c`, `nc`, `ping`, probes).
var BusyboxApplets = []string{
	"sh", "nc", "ping", "ping6", "test", "[", "cat", "echo", "ls", "sleep", "touch",
	"rm", "mkdir", "true", "false", "ip", "wget", "hostname", "env", "ps", "kill", "id",
}

// Inputs are the files that go into the layer.
type Inputs struct {
	FlockLab string // a static (CGO_ENABLED=0) flock-lab binary
	Busybox  string // a static busybox, /bin/busybox of busybox-static
}

// Write writes the OCI layout tarball with the Lab/FlockLab and Pause
// images to w.
func Write(w io.Writer, in Inputs) error {
	layer, err := buildLayer(in)
	if err != nil {
		return err
	}
	layerDigest := digest(layer)
	blobs := map[string][]byte{layerDigest: layer}
	type named struct {
		config []byte
		names  []string
	}
	images := []named{
		{config: imageConfig(layerDigest, nil), names: []string{Lab, FlockLab}},
		{config: imageConfig(layerDigest, []string{"/bin/flock-lab", "pause"}), names: []string{Pause}},
	}
	var index []map[string]any
	for _, img := range images {
		cd := digest(img.config)
		blobs[cd] = img.config
		manifest, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        descriptor("application/vnd.oci.image.config.v1+json", cd, len(img.config)),
			"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar", layerDigest, len(layer))},
		})
		if err != nil {
			return err
		}
		md := digest(manifest)
		blobs[md] = manifest
		for _, name := range img.names {
			d := descriptor("application/vnd.oci.image.manifest.v1+json", md, len(manifest))
			d["annotations"] = map[string]string{"io.containerd.image.name": name}
			d["platform"] = map[string]string{"os": "linux", "architecture": runtime.GOARCH}
			index = append(index, d)
		}
	}
	indexJSON, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", indexJSON},
	}
	for d, b := range blobs {
		files = append(files, struct {
			name string
			data []byte
		}{"blobs/sha256/" + d[len("sha256:"):], b})
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, 0o644, f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// buildLayer is the root filesystem: /bin with flock-lab, busybox and its
// applet links, and a world-writable /tmp.
func buildLayer(in Inputs) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"etc/", 0o755}, {"tmp/", 0o1777}, {"proc/", 0o555}, {"sys/", 0o555}, {"dev/", 0o755}}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ src, dst string }{{in.FlockLab, "bin/flock-lab"}, {in.Busybox, "bin/busybox"}} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		if err := writeFile(tw, f.dst, 0o755, data); err != nil {
			return nil, err
		}
	}
	for _, a := range BusyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	// Names for the pod's processes (ps, id) and a hosts file kubelet
	// replaces anyway.
	if err := writeFile(tw, "etc/passwd", 0o644, []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")); err != nil {
		return nil, err
	}
	if err := writeFile(tw, "etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// epoch keeps the layer's bytes, and so its digest, a function of its
// inputs alone.
var epoch = time.Unix(0, 0)

func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func imageConfig(layerDigest string, entrypoint []string) []byte {
	cfg := map[string]any{"Env": []string{"PATH=/bin"}, "WorkingDir": "/"}
	if entrypoint != nil {
		cfg["Entrypoint"] = entrypoint
	}
	b, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       cfg,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	return b
}

func descriptor(mediaType, digest string, size int) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest, "size": size}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
