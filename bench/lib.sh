# Shared by bench/run and bench/soak: number formatting and the plot
# terminal.  Sourced; defines functions only.

# fmt X: X rounded, with thousands separators (n/a if empty or nan)
fmt() { awk -v x="$1" 'BEGIN{ if (x=="nan"||x=="") {print "n/a"; exit} s=sprintf("%.0f", x); o=""; n=length(s); for(i=1;i<=n;i++){o=o substr(s,i,1); if((n-i)%3==0 && i<n && substr(s,i,1)!="-") o=o ","} print o}'; }
# calc EXPR [DECIMALS]: EXPR evaluated by awk, DECIMALS (default 1) places
calc() { awk "BEGIN{ printf \"%.${2:-1}f\", $1 }"; }
# the gnuplot terminal for PNG files: pngcairo when gnuplot has it
gnuplot_png_terminal() {
	if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then echo pngcairo; else echo png; fi
}
