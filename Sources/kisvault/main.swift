import Foundation
import KisvaultAgent
import KisvaultCLI

var arguments = Array(CommandLine.arguments.dropFirst())
// A detached agent (`agent start` without --foreground) leaves its starter's session first.
AgentLifecycle.enterDetachedSessionIfAsked(&arguments)
exit(await Kisvault.main(arguments: arguments))
