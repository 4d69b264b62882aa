import Foundation
import KisvaultCLI

exit(await Kisvault.main(arguments: Array(CommandLine.arguments.dropFirst())))
