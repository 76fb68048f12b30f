//go:build !unix

package apply

func killSelf() { panic("the crash tests need a Unix system") }
