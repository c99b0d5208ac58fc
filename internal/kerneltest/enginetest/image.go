package enginetest

import (
	"testing"

	"github.com/kanto-can/kanto-can/internal/kerneltest/ctrtest"
)

func ctrtestOCI(tb testing.TB) []byte {
	return ctrtest.OCIArchive(tb, ImageRef, imageFiles(tb))
}

func ctrtestDocker(tb testing.TB) []byte {
	return ctrtest.DockerArchive(tb, ImageRef, imageFiles(tb))
}
