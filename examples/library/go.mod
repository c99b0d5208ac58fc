module example.com/canwire

go 1.26.8

require github.com/kanto-can/kanto-can v0.0.0

require golang.org/x/sys v0.50.0 // indirect

// Built against the packages beside it; a user's module names a version.
replace github.com/kanto-can/kanto-can => ../..
