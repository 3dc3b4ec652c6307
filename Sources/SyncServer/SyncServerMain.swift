import Dispatch
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The process entry of the built-in backend, shared by `turso-sync-server` and `turso-server`
/// (which runs it when started with tursodb's `--sync-server` argv).
public enum SyncServerMain {
    /// Runs the backend for `--sync-server <address> <databasePath>` and never returns.
    public static func run(address: String, databasePath: String, environment: [String: String]) async -> Never {
        let configuration: SyncServerConfiguration
        do {
            configuration = try SyncServerConfiguration(
                address: address,
                databasePath: databasePath,
                environment: environment
            )
        } catch {
            FileHandle.standardError.write(Data("turso-sync-server: \(error)\n".utf8))
            exit(2)
        }
        var logger = Logger(label: "turso.sync")
        logger.logLevel = environment["TURSO_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let service: SyncService
        do {
            service = try SyncService(configuration: configuration, logger: logger)
        } catch {
            logger.error("cannot start", metadata: ["sync.error": "\(error)"])
            exit(1)
        }
        let parent = getppid()
        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        if configuration.exitWithParent {
            // Never outlive the supervisor: if it dies (even by SIGKILL) we are re-parented.
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + 0.5, repeating: 0.5)
            timer.setEventHandler {
                if getppid() != parent { stop.signal() }
            }
            timer.resume()
            parentTimer = timer
        }
        let serving = Task {
            do {
                try await service.run()
            } catch let error as SyncServerError where error.code == .addressInUse {
                logger.error("cannot listen: address in use", metadata: ["sync.error": "\(error)"])
                exit(98)  // EADDRINUSE: the supervisor retries on another port
            } catch  where !Task.isCancelled {
                logger.error("sync server stopped", metadata: ["sync.error": "\(error)"])
                exit(1)
            } catch {}
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                stop.wait()
                continuation.resume()
            }
        }
        logger.info("stopping", metadata: ["sync.database": "\(configuration.databasePath)"])
        serving.cancel()
        await service.shutdown()
        withExtendedLifetime(sources) {}
        exit(0)
    }
}

nonisolated(unsafe) private var parentTimer: DispatchSourceTimer?
