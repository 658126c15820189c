package streamgate.delta;

import java.io.File;
import java.net.URI;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;

/**
 * Hadoop configuration for local paths and s3a:// (S3-compatible stores such as s3proxy).
 *
 * <p>Tables on S3 are s3a://bucket/prefix/table (s3:// works too). S3 settings come from the same environment variables the AWS CLI and SDKs read, so a test
 * points the reader at its store exactly as it points the product there:
 * AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_REGION (default us-east-1). Requests use path-style addressing and SigV4; an http://
 * endpoint turns TLS off. Any "--conf key=value" wins over these.
 */
final class Hadoop {
  private Hadoop() {}

  static Configuration configuration(Map<String, String> overrides) {
    Configuration conf = new Configuration();
    String endpoint = env("AWS_ENDPOINT_URL_S3");
    if (endpoint == null) endpoint = env("AWS_ENDPOINT_URL");
    if (endpoint != null) {
      conf.set("fs.s3a.endpoint", endpoint);
      conf.setBoolean("fs.s3a.path.style.access", true);
      conf.setBoolean("fs.s3a.connection.ssl.enabled", endpoint.startsWith("https:"));
    }
    String region = env("AWS_REGION");
    if (region == null) region = env("AWS_DEFAULT_REGION");
    conf.set("fs.s3a.endpoint.region", region == null ? "us-east-1" : region);
    conf.set("fs.s3a.signing-algorithm", "AWSS3V4SignerType");
    String key = env("AWS_ACCESS_KEY_ID");
    String secret = env("AWS_SECRET_ACCESS_KEY");
    if (key != null && secret != null) {
      conf.set("fs.s3a.aws.credentials.provider",
          "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider");
      conf.set("fs.s3a.access.key", key);
      conf.set("fs.s3a.secret.key", secret);
    }
    // A store that is down or refuses must fail a test in seconds, not after s3a's default
    // minutes of retries.
    conf.set("fs.s3a.attempts.maximum", "2");
    conf.set("fs.s3a.retry.limit", "2");
    conf.set("fs.s3a.retry.interval", "200ms");
    conf.set("fs.s3a.connection.establish.timeout", "5000");
    conf.set("fs.s3a.connection.timeout", "15000");
    // s3a deletes "directory marker" objects after each write with one multi-object delete
    // (POST ?delete), which s3proxy 3.0.0 never answers: keep the markers (Hadoop >= 3.3.1
    // reads either way) and delete object by object where a delete is needed.
    conf.set("fs.s3a.directory.marker.retention", "keep");
    conf.set("fs.s3a.multiobjectdelete.enable", "false");
    // s3://bucket/... names the same objects as s3a:// (Hadoop 3 has no other s3 client), and
    // Delta picks its S3 log store for either scheme.
    conf.set("fs.s3.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem");
    // No metrics or audit threads for a process that lives a few seconds.
    conf.set("fs.s3a.audit.enabled", "false");
    overrides.forEach(conf::set);
    return conf;
  }

  /** A local path (relative to the working directory) or a URI with a scheme. */
  static Path tablePath(String table) {
    if (table.matches("^[A-Za-z][A-Za-z0-9+.-]*://.*")) return new Path(URI.create(table));
    if (table.startsWith("file:")) return new Path(URI.create(table));
    return new Path(new File(table).getAbsoluteFile().toURI());
  }

  private static String env(String name) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? null : value;
  }
}
