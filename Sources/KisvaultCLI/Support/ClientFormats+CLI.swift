import ArgumentParser
import ClientFormats

extension TokenFileFormat: ExpressibleByArgument {}
