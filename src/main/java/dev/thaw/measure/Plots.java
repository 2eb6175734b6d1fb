package dev.thaw.measure;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** PNG plots of measurements (XChart, headless). */
public final class Plots {
    private Plots() {}

    /** One line per method of a value in consecutive windows of {@code stepMillis} from the restore's start. */
    public static Path overTime(Path png, String title, String yAxisTitle, Map<String, List<Double>> seriesByMethod, long stepMillis) {
        return lines(png, title, "seconds after the restore began", yAxisTitle, seriesByMethod, stepMillis / 1000.0);
    }

    /** One line per series; point i of a series is at x = (i + 1) * xStep. */
    public static Path lines(Path png, String title, String xAxisTitle, String yAxisTitle, Map<String, List<Double>> seriesByMethod,
                             double xStep) {
        System.setProperty("java.awt.headless", "true");
        XYChart chart = new XYChartBuilder().width(900).height(500).title(title).xAxisTitle(xAxisTitle)
                .yAxisTitle(yAxisTitle).build();
        chart.getStyler().setYAxisMin(0.0);
        chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideSE);
        for (Map.Entry<String, List<Double>> e : seriesByMethod.entrySet()) {
            List<Double> y = e.getValue();
            if (y.isEmpty()) continue;
            double[] xs = new double[y.size()];
            double[] ys = new double[y.size()];
            for (int i = 0; i < y.size(); i++) {
                xs[i] = (i + 1) * xStep; // each point at the end of its window
                ys[i] = y.get(i);
            }
            chart.addSeries(e.getKey(), xs, ys).setMarker(SeriesMarkers.NONE);
        }
        try {
            Files.createDirectories(png.toAbsolutePath().getParent());
            String name = png.toString();
            BitmapEncoder.saveBitmap(chart, name.endsWith(".png") ? name.substring(0, name.length() - 4) : name, BitmapEncoder.BitmapFormat.PNG);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write the plot " + png + ": " + e.getMessage(), e);
        } catch (Error e) {
            // A headless JDK without fonts fails deep in AWT: say what is missing.
            throw new IllegalStateException("cannot draw the plot " + png + " (" + e + "): the JDK needs fonts (Debian: fontconfig,"
                    + " fonts-dejavu-core)", e);
        }
        return png.toString().endsWith(".png") ? png : Path.of(png + ".png");
    }
}
