// Package sample reads what kanto-can's attachments and their host buses
// are doing, from the kernel alone (no daemon, no records), and turns two
// readings into rates: frames per second each way, drops, rate-limit
// drops and, for a CAN controller with a bitrate, the bus load. It is what
// 'kanto-can top' shows.
package sample
