import ArgumentParser
import Foundation
import CredentialService

/// `kisvault approval`
struct ApprovalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approval",
        abstract: "Hand out, issue and rotate WebSocket approval keys.",
        subcommands: [Get.self, Issue.self, Rotate.self, Check.self, Status.self])

}
