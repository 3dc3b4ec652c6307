import Foundation
import ServerSupport

/// The command line of a namespace's backend: `<TURSODB_BIN> --sync-server 127.0.0.1:<port> <db>`,
/// or the built-in backend (this executable, which serves tursodb's argv itself) when `TURSODB_BIN`
/// is not an executable file.
public struct BackendCommand: Sendable, Equatable {
    /// What is executed. For the built-in backend this is `/proc/self/exe`, which still names this
    /// program after its file was replaced or deleted (an in-place upgrade of a running node).
    public var executable: String
    /// The program's path, for logs.
    public var displayPath: String
    public var isBuiltIn: Bool
    /// The secret a built-in backend demands on every request (see `BackendSecret`).
    public var secret: String
    /// The data port's body limit, which a built-in backend adopts so the two never disagree.
    public var maxBodyBytes: Int

    /// How long a built-in backend's change history serves incremental pulls.
    public var historyRetention: Duration

    public init(
        tursodbBinary: String,
        secret: String = BackendSecret.generate(),
        maxBodyBytes: Int = 128 << 20,
        historyRetention: Duration = .seconds(7 * 86_400)
    ) {
        self.secret = secret
        self.maxBodyBytes = maxBodyBytes
        self.historyRetention = historyRetention
        if FileManager.default.isExecutableFile(atPath: tursodbBinary),
            !((try? FileManager.default.attributesOfItem(atPath: tursodbBinary)[.type] as? FileAttributeType)
                == .typeDirectory)
        {
            self.executable = tursodbBinary
            self.displayPath = tursodbBinary
            self.isBuiltIn = false
        } else {
            let selfLink = "/proc/self/exe"
            let resolved =
                (try? FileManager.default.destinationOfSymbolicLink(atPath: selfLink)) ?? CommandLine.arguments[0]
            self.executable = FileManager.default.fileExists(atPath: selfLink) ? selfLink : resolved
            self.displayPath = resolved
            self.isBuiltIn = true
        }
    }

    public func arguments(port: Int, databasePath: String) -> [String] {
        ["--sync-server", "127.0.0.1:\(port)", databasePath]
    }

    /// Changes to the inherited environment for the child: the node's own tokens never reach a
    /// backend (nil removes a variable); a built-in backend exits when the node dies, demands the
    /// node's secret and accepts the data port's body limit and history retention.
    public var environment: [String: String?] {
        var environment: [String: String?] = ["TURSO_AUTH_TOKEN": nil, "TURSO_ADMIN_TOKEN": nil]
        if self.isBuiltIn {
            environment["TURSO_SYNC_EXIT_WITH_PARENT"] = "1"
            environment[BackendSecret.environmentKey] = self.secret
            environment["TURSO_SYNC_MAX_BODY_BYTES"] = String(self.maxBodyBytes)
            environment["TURSO_SYNC_HISTORY_RETENTION_SECONDS"] = String(self.historyRetention.components.seconds)
        }
        return environment
    }
}
