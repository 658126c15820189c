package streamgate.delta;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.delta.standalone.DeltaLog;
import io.delta.standalone.Snapshot;
import io.delta.standalone.actions.AddFile;
import io.delta.standalone.actions.Metadata;
import io.delta.standalone.actions.Protocol;
import io.delta.standalone.data.CloseableIterator;
import io.delta.standalone.data.RowRecord;
import io.delta.standalone.types.ArrayType;
import io.delta.standalone.types.DataType;
import io.delta.standalone.types.MapType;
import io.delta.standalone.types.StructField;
import io.delta.standalone.types.StructType;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Reads one Delta table with Delta's own Java library (delta-standalone) and prints ONE JSON
 * object to stdout: what an independent reader sees in a table streamgate wrote.
 *
 * <pre>
 * DeltaRead TABLE_URI... [--txn APPID]... [--columns a,b,c] [--conf hadoop.key=value]...
 * </pre>
 *
 * With more than one TABLE_URI it prints one JSON array, an object per table in argument order
 * (one JVM start for many tables); the options apply to each table.
 *
 * TABLE_URI is a local path, file:///..., or s3a://bucket/prefix/table (see {@link Hadoop}).
 * Exit 0 with the JSON; 1 when the table cannot be read (the Java exception on stderr); 2 on bad
 * arguments. Everything but the JSON goes to stderr.
 */
public final class DeltaRead {
  /** Delta's (and Hive's) name for a null partition value in a path. */
  static final String NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__";

  private static final JsonNodeFactory JSON = JsonNodeFactory.instance;

  public static void main(String[] args) {
    // Libraries that print (not log) must not corrupt the one JSON document on stdout.
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
    System.setOut(System.err);
    Args parsed;
    try {
      parsed = Args.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("DeltaRead: " + e.getMessage());
      System.err.println("usage: DeltaRead TABLE_URI... [--txn APPID]... [--columns a,b,c] [--conf key=value]...");
      System.exit(2);
      return;
    }
    String current = parsed.tables.get(0);
    try {
      ArrayNode all = JSON.arrayNode();
      for (String table : parsed.tables) {
        current = table;
        all.add(read(parsed, table));
      }
      Object result = parsed.tables.size() == 1 ? all.get(0) : all;
      out.println(new ObjectMapper().writeValueAsString(result));
      out.flush();
      System.exit(0);
    } catch (Throwable t) {
      Errors.report("reading Delta table " + current, t);
      System.exit(1);
    }
  }

  static ObjectNode read(Args args, String table) throws Exception {
    Timing.mark("jvm + main");
    Configuration conf = Hadoop.configuration(args.conf);
    Path tablePath = Hadoop.tablePath(table);
    FileSystem fs = tablePath.getFileSystem(conf);
    Timing.mark("hadoop FileSystem");
    DeltaLog log = DeltaLog.forTable(conf, tablePath);
    Timing.mark("DeltaLog.forTable");
    // forTable + update() on a directory without a log answers "version -1, no files": an
    // empty table. A test that points at the wrong place must fail instead.
    if (!log.tableExists()) {
      throw new IllegalStateException(
          "Not a Delta table: no commit found under " + new Path(tablePath, "_delta_log"));
    }
    Snapshot snapshot = log.update();
    Timing.mark("log replay (update)");
    Metadata metadata = snapshot.getMetadata();
    List<String> partitionColumns = metadata.getPartitionColumns();
    StructType schema = metadata.getSchema();
    if (schema == null) throw new IllegalStateException("Table metadata has no schema");

    ObjectNode result = JSON.objectNode();
    result.put("table", table);
    result.put("version", snapshot.getVersion());
    result.set("protocol", protocolOf(snapshot));
    result.put("tableId", metadata.getId());
    ObjectNode configuration = result.putObject("configuration");
    new TreeMap<>(metadata.getConfiguration()).forEach(configuration::put);
    ArrayNode partitions = result.putArray("partitionColumns");
    partitionColumns.forEach(partitions::add);
    ArrayNode fields = result.putArray("schema");
    for (StructField field : schema.getFields()) {
      fields.addObject()
          .put("name", field.getName())
          .put("type", field.getDataType().getSimpleString())
          .put("nullable", field.isNullable());
    }

    List<AddFile> files = new ArrayList<>(snapshot.getAllFiles());
    files.sort(Comparator.comparing(AddFile::getPath));
    result.put("numFiles", files.size());
    ArrayNode fileNodes = result.putArray("files");
    ObjectMapper mapper = new ObjectMapper();
    for (AddFile add : files) {
      ObjectNode node = fileNodes.addObject();
      // add.path is a URI reference (RFC 3986): "dt=a%20b/..." names the directory "dt=a b".
      URI uri = new URI(add.getPath());
      node.put("path", uri.isAbsolute() ? uri.toString() : uri.getPath());
      node.put("rawPath", add.getPath());
      ObjectNode values = node.putObject("partitionValues");
      for (String column : partitionColumns) {
        values.put(column, add.getPartitionValues().get(column));
      }
      node.put("size", add.getSize());
      // The object's real length: a wrong add.size breaks readers that trust it (Spark splits).
      Path dataPath = uri.isAbsolute() ? new Path(uri) : new Path(tablePath, new Path(uri));
      node.put("actualSize", fs.getFileStatus(dataPath).getLen());
      JsonNode numRecords = null;
      if (add.getStats() != null && !add.getStats().isEmpty()) {
        numRecords = mapper.readTree(add.getStats()).get("numRecords");
      }
      if (numRecords != null && numRecords.canConvertToLong()) {
        node.put("numRecords", numRecords.asLong());
      } else {
        node.putNull("numRecords");
      }
    }

    Timing.mark("files");
    if (!args.txn.isEmpty()) {
      ObjectNode txn = result.putObject("txn");
      for (String appId : args.txn) {
        // -1 is Delta's own answer for "no transaction of this app": kept as is.
        txn.put(appId, log.startTransaction().txnVersion(appId));
      }
    }

    for (String column : args.columns) {
      if (schema.get(column) == null) {
        throw new IllegalArgumentException(
            "Column \"" + column + "\" is not in the table schema " + schema.getFieldNames());
      }
    }
    Timing.mark("txn");
    long rows = 0;
    Map<String, Long> byPartition = new TreeMap<>();
    ArrayNode valueRows = args.columns.isEmpty() ? null : JSON.arrayNode();
    try (CloseableIterator<RowRecord> it = snapshot.open()) {
      while (it.hasNext()) {
        RowRecord row = it.next();
        rows++;
        byPartition.merge(partitionKey(row, partitionColumns), 1L, Long::sum);
        if (valueRows != null) {
          ArrayNode values = valueRows.addArray();
          for (String column : args.columns) values.add(Values.field(row, column));
        }
      }
    }
    Timing.mark("rows (snapshot.open)");
    result.put("rows", rows);
    ObjectNode rowsByPartition = result.putObject("rowsByPartition");
    byPartition.forEach(rowsByPartition::put);
    if (valueRows != null) {
      ArrayNode columns = result.putArray("columns");
      args.columns.forEach(columns::add);
      result.set("values", valueRows);
    }
    ArrayNode notes = result.putArray("notes");
    for (String column : Values.rawTimestampColumns) {
      notes.add("Column \"" + column + "\": delta-standalone cannot decode INT64 timestamps; read as"
          + " INT64 microseconds since the epoch");
    }
    return result;
  }

  /** DELTA_READER_TIMING=1: where a read's time goes, on stderr. */
  static final class Timing {
    private static final boolean ON = System.getenv("DELTA_READER_TIMING") != null;
    private static long last = java.lang.management.ManagementFactory.getRuntimeMXBean().getStartTime();

    static void mark(String phase) {
      if (!ON) return;
      long now = System.currentTimeMillis();
      System.err.printf("DeltaRead: %-22s %5d ms%n", phase, now - last);
      last = now;
    }
  }

  /** "dt=2026-01-01/type=a b" from a row's own (unescaped) partition values, in table order. */
  static String partitionKey(RowRecord row, List<String> partitionColumns) {
    StringBuilder key = new StringBuilder();
    for (String column : partitionColumns) {
      if (key.length() > 0) key.append('/');
      key.append(column).append('=');
      JsonNode value = Values.field(row, column);
      key.append(value.isNull() ? NULL_PARTITION : value.asText());
    }
    return key.toString();
  }

  /** minReader/minWriter: the public Snapshot interface hides the protocol, SnapshotImpl has it. */
  static JsonNode protocolOf(Snapshot snapshot) {
    try {
      Object p = snapshot.getClass().getMethod("protocol").invoke(snapshot);
      if (p instanceof Protocol protocol) {
        return JSON.objectNode()
            .put("minReaderVersion", protocol.getMinReaderVersion())
            .put("minWriterVersion", protocol.getMinWriterVersion());
      }
    } catch (ReflectiveOperationException | RuntimeException e) {
      System.err.println("DeltaRead: protocol not available (" + e + ")");
    }
    return JSON.nullNode();
  }

  /** A row's values as JSON: exact where JSON numbers are not (decimals as strings). */
  static final class Values {
    static JsonNode field(RowRecord row, String name) {
      if (row.isNullAt(name)) return JSON.nullNode();
      DataType type = row.getSchema().get(name).getDataType();
      switch (type.getTypeName()) {
        case "string": return JSON.textNode(row.getString(name));
        case "long": return JSON.numberNode(row.getLong(name));
        case "integer": return JSON.numberNode(row.getInt(name));
        case "short": return JSON.numberNode(row.getShort(name));
        case "byte": return JSON.numberNode(row.getByte(name));
        case "double": return JSON.numberNode(row.getDouble(name));
        case "float": return JSON.numberNode(row.getFloat(name));
        case "boolean": return JSON.booleanNode(row.getBoolean(name));
        case "binary": return JSON.textNode(Base64.getEncoder().encodeToString(row.getBinary(name)));
        case "date": return JSON.textNode(row.getDate(name).toLocalDate().toString());
        case "timestamp": return timestamp(row, name);
        case "struct": return record(row.getRecord(name));
        case "array": return any(row.getList(name), type);
        case "map": return any(row.getMap(name), type);
        default:
          if (type.getTypeName().startsWith("decimal")) {
            return JSON.textNode(row.getBigDecimal(name).toPlainString());
          }
          return JSON.textNode(String.valueOf(row.getString(name)));
      }
    }

    /** Columns whose INT64 timestamps Delta's reader could not decode (see timestamp()). */
    static final java.util.Set<String> rawTimestampColumns = new java.util.TreeSet<>();

    /**
     * delta-standalone decodes Parquet timestamps with parquet4s 1.x, which knows INT96 only: an
     * INT64 TIMESTAMP (what DuckDB and most writers since Spark 3 write, and what the Delta
     * protocol allows) fails with scala.MatchError. Then the raw INT64 is read from the same
     * record and taken as microseconds since the epoch (the protocol's unit for timestamp), and
     * the column is listed in the output's "notes".
     */
    static JsonNode timestamp(RowRecord row, String name) {
      try {
        return JSON.textNode(row.getTimestamp(name).toInstant().toString());
      } catch (scala.MatchError e) {
        Object raw = rawValue(row, name);
        if (!(raw instanceof Long micros)) throw e;
        rawTimestampColumns.add(name);
        return JSON.textNode(java.time.Instant.EPOCH.plus(micros, java.time.temporal.ChronoUnit.MICROS).toString());
      }
    }

    /** The undecoded Parquet value behind a RowParquetRecordImpl field (LongValue -> Long). */
    private static Object rawValue(RowRecord row, String name) {
      try {
        Object record = row.getClass().getMethod("record").invoke(row);
        Object value = record.getClass().getMethod("get", String.class).invoke(record, name);
        return value.getClass().getMethod("value").invoke(value);
      } catch (ReflectiveOperationException e) {
        return null;
      }
    }

    static ObjectNode record(RowRecord record) {
      ObjectNode node = JSON.objectNode();
      for (String name : record.getSchema().getFieldNames()) node.set(name, field(record, name));
      return node;
    }

    /** Elements of arrays and maps come back as plain Java objects. */
    static JsonNode any(Object value, DataType type) {
      if (value == null) return JSON.nullNode();
      if (value instanceof RowRecord r) return record(r);
      if (value instanceof List<?> list) {
        ArrayNode array = JSON.arrayNode();
        DataType element = type instanceof ArrayType a ? a.getElementType() : null;
        for (Object v : list) array.add(any(v, element));
        return array;
      }
      if (value instanceof Map<?, ?> map) {
        ObjectNode object = JSON.objectNode();
        DataType valueType = type instanceof MapType m ? m.getValueType() : null;
        map.forEach((k, v) -> object.set(String.valueOf(k), any(v, valueType)));
        return object;
      }
      if (value instanceof String s) return JSON.textNode(s);
      if (value instanceof Long l) return JSON.numberNode(l);
      if (value instanceof Integer i) return JSON.numberNode(i);
      if (value instanceof Short s) return JSON.numberNode(s);
      if (value instanceof Byte b) return JSON.numberNode(b);
      if (value instanceof Double d) return JSON.numberNode(d);
      if (value instanceof Float f) return JSON.numberNode(f);
      if (value instanceof Boolean b) return JSON.booleanNode(b);
      if (value instanceof BigDecimal d) return JSON.textNode(d.toPlainString());
      if (value instanceof byte[] b) return JSON.textNode(Base64.getEncoder().encodeToString(b));
      if (value instanceof java.sql.Timestamp t) return JSON.textNode(t.toInstant().toString());
      if (value instanceof java.sql.Date d) return JSON.textNode(d.toLocalDate().toString());
      return JSON.textNode(String.valueOf(value));
    }
  }

  static final class Args {
    final List<String> tables = new ArrayList<>();
    final List<String> txn = new ArrayList<>();
    final List<String> columns = new ArrayList<>();
    final Map<String, String> conf = new TreeMap<>();

    static Args parse(String[] argv) {
      Args args = new Args();
      for (int i = 0; i < argv.length; i++) {
        String a = argv[i];
        switch (a) {
          case "--txn" -> args.txn.add(value(argv, ++i, a));
          case "--columns" -> {
            for (String c : value(argv, ++i, a).split(",")) {
              if (!c.isBlank()) args.columns.add(c.trim());
            }
          }
          case "--conf" -> {
            String kv = value(argv, ++i, a);
            int eq = kv.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("--conf wants key=value, got \"" + kv + "\"");
            args.conf.put(kv.substring(0, eq), kv.substring(eq + 1));
          }
          default -> {
            if (a.startsWith("--")) throw new IllegalArgumentException("unknown option \"" + a + "\"");
            args.tables.add(a);
          }
        }
      }
      if (args.tables.isEmpty()) throw new IllegalArgumentException("missing TABLE_URI");
      return args;
    }

    private static String value(String[] argv, int i, String option) {
      if (i >= argv.length) throw new IllegalArgumentException(option + " needs a value");
      return argv[i];
    }
  }
}
