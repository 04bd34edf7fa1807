package bench;

import com.google.cloud.tools.jib.api.Containerizer;
import com.google.cloud.tools.jib.api.Jib;
import com.google.cloud.tools.jib.api.JibContainer;
import com.google.cloud.tools.jib.api.LogEvent;
import com.google.cloud.tools.jib.api.RegistryImage;
import com.google.cloud.tools.jib.api.buildplan.AbsoluteUnixPath;
import com.google.cloud.tools.jib.api.buildplan.FileEntriesLayer;
import com.google.cloud.tools.jib.api.buildplan.Port;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * What bench/build's Dockerfile does, through jib-core: the WAR as ROOT.war on the base,
 * with the same labels, env and port, pushed to a plain-HTTP registry.
 *
 * <p>Usage: BASE WAR TARGET BASE_CACHE APP_CACHE. Prints the digest on stdout and Jib's own
 * time (after JVM start) as "jib_seconds N" on stderr.
 */
public final class JibBuild {
  public static void main(String[] args) throws Exception {
    long start = System.nanoTime();
    if (args.length != 5) {
      System.err.println("usage: JibBuild BASE WAR TARGET BASE_CACHE APP_CACHE");
      System.exit(2);
    }
    Path war = Paths.get(args[1]);
    FileEntriesLayer layer =
        FileEntriesLayer.builder()
            .setName("war")
            .addEntry(war, AbsoluteUnixPath.get("/usr/local/tomcat/webapps/ROOT.war"))
            .build();
    // The caches are explicit: Jib's default application cache is a temp dir it never
    // empties, and the base cache stands in for a build server's warm one.
    Containerizer to =
        Containerizer.to(RegistryImage.named(args[2]))
            .setAllowInsecureRegistries(true)
            .setBaseImageLayersCache(Paths.get(args[3]))
            .setApplicationLayersCache(Paths.get(args[4]))
            .addEventHandler(
                LogEvent.class,
                e -> {
                  if (e.getLevel() == LogEvent.Level.ERROR || e.getLevel() == LogEvent.Level.WARN) {
                    System.err.println("jib: " + e.getMessage());
                  }
                });
    JibContainer built =
        Jib.from(RegistryImage.named(args[0]))
            .addFileEntriesLayer(layer)
            .addLabel("org.opencontainers.image.title", "bench")
            .addLabel("org.opencontainers.image.version", "1.0")
            .addEnvironmentVariable("JAVA_OPTS", "-Xmx256m")
            .addExposedPort(Port.tcp(8080))
            .containerize(to);
    System.err.printf("jib_seconds %.3f%n", (System.nanoTime() - start) / 1e9);
    System.out.println(built.getDigest());
  }
}
