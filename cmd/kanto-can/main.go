// Command kanto-can gives containers their own CAN interfaces, wired to host
// CAN buses through vxcan and the kernel's CAN gateway. See the README.
package main

import "github.com/kanto-can/kanto-can/internal/cli"

func main() { cli.Run() }
