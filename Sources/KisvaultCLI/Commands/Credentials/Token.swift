import ArgumentParser
import Foundation
import CredentialService

/// `kisvault token`
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Hand out, issue, rotate and revoke REST access tokens.",
        subcommands: [Get.self, Issue.self, Rotate.self, Revoke.self, Invalidate.self, Export.self, Check.self, Status.self])

}
